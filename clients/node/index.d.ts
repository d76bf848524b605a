// Types of @sila/archiver-client (index.js): the sila-archiver job protocol
// (docs/PROTOCOL.md) for TypeScript app servers.
import type { Redis } from 'ioredis';

/** Reads an object of the store: its bytes, or null when there is none (404); throws on other errors. */
export type GetObject = (key: string) => Promise<Buffer | Uint8Array | string | null>;
/** Whether an object exists (HEAD). */
export type HeadObject = (key: string) => Promise<boolean>;

export interface SilaClientOptions {
  /** Commands go here; the client opens one more connection (redis.duplicate()) for SUBSCRIBE. No keyPrefix. */
  redis: Redis;
  /** Needed by openSpace, ensureBlob, readBlob, readManifest. */
  getObject?: GetObject;
  /** Used by ensureBlob to test presence without reading (else getObject). */
  headObject?: HeadObject;
  /** Redis key prefix, SILA_KEY_PREFIX of the workers; default "sila:". */
  prefix?: string;
  /** Recorded in the job spec and the audit trail. */
  requestedBy?: string;
}

export type JobType = 'archive' | 'unarchive' | 'migrate';

export interface EnqueueOptions {
  urgent?: boolean;
  requestedBy?: string;
  archiveKey?: string;
  source?: string;
  target?: 'active' | 'archived';
  overwrite?: boolean;
  /** The new job's id (default: 32 random hex digits). */
  id?: string;
}

export interface EnqueueResult {
  id: string;
  /** false: the id of the job already queued, running or retrying for the space. */
  created: boolean;
}

export interface JobStatus {
  state: 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed';
  type?: JobType;
  spaceId?: string;
  phase?: string;
  progress?: number;
  attempts?: number;
  bytesDone?: number;
  bytesTotal?: number;
  filesDone?: number;
  filesTotal?: number;
  error?: string;
  /** Parsed result JSON (succeeded). */
  result?: Record<string, unknown> | null;
  readyAt?: string;
  timeToReadyMs?: number;
  createdAt?: string;
  startedAt?: string;
  finishedAt?: string;
  updatedAt?: string;
  [field: string]: unknown;
}

export interface ProgressReport extends Partial<JobStatus> {
  /** "event": a message of sila:job:<id>; "hash": a read of the status hash whose state/phase/progress changed. */
  source: 'event' | 'hash';
  jobId: string;
}

export interface FollowOptions {
  /** Read the hash at least this often (default 1000 ms). */
  pollMs?: number;
  /** Reject when the job has no outcome by then (default: no limit). */
  timeoutMs?: number;
}

export interface ReadyInfo {
  spaceId: string;
  jobId: string | null;
  timeToReadyMs?: number;
  readyAt?: string;
  /** Where it was learnt: the event, the status hash, the manifest, or the complete event. */
  via: 'event' | 'hash' | 'manifest' | 'complete';
}

export interface CompleteInfo {
  spaceId: string;
  jobId: string | null;
  timeToCompleteMs?: number;
  result?: Record<string, unknown>;
  via: 'event' | 'hash' | 'manifest';
}

export interface OpenOptions {
  pollMs?: number;
  /** Reject ready/complete when not complete by then (default: no limit). */
  timeoutMs?: number;
  requestedBy?: string;
}

export interface OpenedSpace {
  spaceId: string;
  /** The unarchive job (null when the space was active: nothing to do). */
  jobId: string | null;
  /** Whether this open created the job (false: deduplicated onto a running one). */
  created?: boolean;
  /** The manifest's state when opened (null: no manifest, an active space). */
  state: string | null;
  /** Usable: read/write ops, write blobs, ensureBlob for missing blobs. */
  ready: Promise<ReadyInfo>;
  /** Every object restored, manifest active. Rejects on `failed` (also after ready). */
  complete: Promise<CompleteInfo>;
  /** Stop waiting (rejects pending promises with "closed"). */
  close(): Promise<void>;
}

export interface EnsureBlobOptions {
  /** Wait this long for an answer to one want request (default 3000 ms). */
  wantTimeoutMs?: number;
  /** Requests before giving up (default 3); an urgent unarchive is queued after each timeout. */
  tries?: number;
  requestedBy?: string;
}

export interface EnsureBlobResult {
  found: boolean;
  /** active/<spaceId>/<path> */
  key: string;
  via: 'present' | 'served' | 'complete' | 'active';
}

export class SilaError extends Error {
  spaceId?: string;
  jobId?: string;
  error?: string;
  path?: string;
}

export class SilaClient {
  constructor(opts: SilaClientOptions);
  readonly prefix: string;
  key(name: string): string;
  close(): Promise<void>;
  enqueue(type: JobType, spaceId: string, opts?: EnqueueOptions): Promise<EnqueueResult>;
  readManifest(spaceId: string): Promise<Record<string, unknown> | null>;
  jobStatus(id: string): Promise<JobStatus | null>;
  followJob(id: string, onProgress?: ((r: ProgressReport) => void) | null, opts?: FollowOptions): Promise<JobStatus>;
  openSpace(spaceId: string, opts?: OpenOptions): Promise<OpenedSpace>;
  ensureBlob(spaceId: string, path: string, opts?: EnsureBlobOptions): Promise<EnsureBlobResult>;
  readBlob(spaceId: string, path: string, opts?: EnsureBlobOptions): Promise<Buffer | null>;
}

/** The text of enqueue.lua (= docs/enqueue.lua) and its SHA-1. */
export const ENQUEUE_LUA: string;
export const ENQUEUE_SHA: string;
