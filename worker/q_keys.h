/*
 * q_keys: every Redis key (and channel) name of the job protocol, built in
 * this one place from the key prefix (SILA_KEY_PREFIX, "sila:" by default)
 * into a bounded buffer. No other file concatenates key names: a Redis
 * Cluster hash tag, when one comes, goes here. Each returns false when the
 * name did not fit in len (it is then cut, as snprintf cuts).
 *
 *   q_key_lane      <prefix>jobs / <prefix>jobs:urgent (the two lanes)
 *   q_key_lane_named  the same from a lane name "jobs" / "jobs:urgent"
 *   q_key_delayed   <prefix>jobs:delayed
 *   q_key_dead      <prefix>jobs:dead
 *   q_key_running   <prefix>jobs:running
 *   q_key_job       <prefix>job:<id> (status hash and its channel)
 *   q_key_job_match <prefix>job:* (the SCAN pattern of every status hash)
 *   q_key_dedup     <prefix>dedup:<type>:<spaceId>
 *   q_key_space     <prefix>space:<spaceId> (channel)
 *   q_key_lock      <prefix>lock:<spaceId>
 *   q_key_named     <prefix><name> (a named lock, e.g. "sweep:lock")
 *   q_key_audit     <prefix>audit
 *   q_key_activity  <prefix>activity
 *   q_key_sweep_cursor  <prefix>sweep:cursor (where the next sweep starts)
 *   q_key_stats     <prefix>stats:<YYYY-MM-DDTHHMM> (the minute of t)
 *   q_key_stats_day <prefix>stats:day:<YYYYMMDD> (the UTC day of t)
 *   q_key_ttr       <prefix>ttr:<YYYYMMDDTHHMM> (time-to-ready samples)
 *   q_key_ttc       <prefix>ttc:<YYYYMMDDTHHMM> (time-to-complete samples)
 *   q_key_want      <prefix>want:<spaceId> (paths wanted ahead of order)
 *   q_key_mf        <prefix>mf:<spaceId> (the fenced manifest record, on
 *                   S3 servers without conditional PUT)
 */
#ifndef WK_WORKER_Q_KEYS_H
#define WK_WORKER_Q_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The lane names below the prefix, as the status hash ("lane") and the
 * delayed set's members record them. */
#define Q_LANE_NORMAL "jobs"
#define Q_LANE_URGENT "jobs:urgent"

bool q_key_lane(const char *prefix, bool urgent, char *buf, size_t len);
bool q_key_lane_named(const char *prefix, const char *lane, char *buf,
                      size_t len);
bool q_key_delayed(const char *prefix, char *buf, size_t len);
bool q_key_dead(const char *prefix, char *buf, size_t len);
bool q_key_running(const char *prefix, char *buf, size_t len);
bool q_key_job(const char *prefix, const char *job_id, char *buf, size_t len);
bool q_key_job_match(const char *prefix, char *buf, size_t len);
bool q_key_dedup(const char *prefix, const char *type, const char *space_id,
                 char *buf, size_t len);
bool q_key_space(const char *prefix, const char *space_id, char *buf,
                 size_t len);
bool q_key_lock(const char *prefix, const char *space_id, char *buf,
                size_t len);
bool q_key_named(const char *prefix, const char *name, char *buf, size_t len);
bool q_key_audit(const char *prefix, char *buf, size_t len);
bool q_key_activity(const char *prefix, char *buf, size_t len);
bool q_key_sweep_cursor(const char *prefix, char *buf, size_t len);
bool q_key_stats(const char *prefix, time_t t, char *buf, size_t len);
bool q_key_stats_day(const char *prefix, time_t t, char *buf, size_t len);
bool q_key_ttr(const char *prefix, time_t t, char *buf, size_t len);
bool q_key_ttc(const char *prefix, time_t t, char *buf, size_t len);
bool q_key_want(const char *prefix, const char *space_id, char *buf,
                size_t len);
bool q_key_mf(const char *prefix, const char *space_id, char *buf, size_t len);

/* The reverse: the lane name of a lane key ("jobs" when key is not one of
 * prefix's), and the job id of a status hash key (NULL when it is not one). */
const char *q_key_lane_of(const char *prefix, const char *key);
const char *q_key_job_id_of(const char *prefix, const char *key);

#endif
