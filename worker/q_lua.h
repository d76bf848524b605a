/*
 * q_lua: the Lua scripts of the job protocol (internal to the q_*.c
 * files). Each script declares every key it touches in KEYS; key names are
 * built by the caller (q_keys.h), never inside a script. The comment of
 * each script in q_lua.c lists its KEYS, ARGV and reply; the enqueue's
 * text and comment are docs/enqueue.lua (public contract).
 */
#ifndef WK_WORKER_Q_LUA_H
#define WK_WORKER_Q_LUA_H

extern const char q_lua_enqueue[];    /* q_enqueue */
extern const char q_lua_begin[];      /* q_begin */
extern const char q_lua_requeue[];    /* q_requeue */
extern const char q_lua_promote[];    /* q_promote_delayed */
extern const char q_lua_repair[];     /* q_repair */
extern const char q_lua_retry[];      /* q_retry */
extern const char q_lua_space_busy[]; /* q_space_busy */
extern const char q_lua_own[];        /* q_own_renew */
extern const char q_lua_mf_record[];  /* q_mf_record */
extern const char q_lua_mf_check[];   /* q_mf_check */
extern const char q_lua_del_if[];     /* delete a key holding a value */
extern const char q_lua_pexpire_if[]; /* extend a key holding a value */
extern const char q_lua_sweep_cur[];  /* q_sweep_cursor_save */

/* A reply of q_lua_enqueue / q_lua_space_busy: a key read before the call
 * changed meanwhile; read it again and call again. */
#define Q_LUA_STALE (-1)

#endif
