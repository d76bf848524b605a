/* q_keys: the one place where Redis key and channel names are built from
 * the key prefix (see q_keys.h for the list). */
#include "worker/q_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/wk_parse.h"

static bool key_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool key_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

bool q_key_lane(const char *prefix, bool urgent, char *buf, size_t len)
{
    return key_fmt(buf, len, "%s%s", prefix,
                   urgent ? Q_LANE_URGENT : Q_LANE_NORMAL);
}

bool q_key_lane_named(const char *prefix, const char *lane, char *buf,
                      size_t len)
{
    return q_key_lane(prefix, strcmp(lane, Q_LANE_URGENT) == 0, buf, len);
}

bool q_key_delayed(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%sjobs:delayed", prefix);
}

bool q_key_dead(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%sjobs:dead", prefix);
}

bool q_key_running(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%sjobs:running", prefix);
}

bool q_key_job(const char *prefix, const char *job_id, char *buf, size_t len)
{
    return key_fmt(buf, len, "%sjob:%s", prefix, job_id);
}

bool q_key_job_match(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%sjob:*", prefix);
}

bool q_key_dedup(const char *prefix, const char *type, const char *space_id,
                 char *buf, size_t len)
{
    return key_fmt(buf, len, "%sdedup:%s:%s", prefix, type, space_id);
}

bool q_key_space(const char *prefix, const char *space_id, char *buf,
                 size_t len)
{
    return key_fmt(buf, len, "%sspace:%s", prefix, space_id);
}

bool q_key_lock(const char *prefix, const char *space_id, char *buf, size_t len)
{
    return key_fmt(buf, len, "%slock:%s", prefix, space_id);
}

bool q_key_named(const char *prefix, const char *name, char *buf, size_t len)
{
    return key_fmt(buf, len, "%s%s", prefix, name);
}

bool q_key_audit(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%saudit", prefix);
}

bool q_key_activity(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%sactivity", prefix);
}

bool q_key_sweep_cursor(const char *prefix, char *buf, size_t len)
{
    return key_fmt(buf, len, "%ssweep:cursor", prefix);
}

bool q_key_stats(const char *prefix, time_t t, char *buf, size_t len)
{
    char stamp[32];
    wk_fmt_stamp(t - t % 60, stamp, sizeof(stamp));
    return key_fmt(buf, len, "%sstats:%.13s", prefix, stamp); /* ...THHMM */
}

bool q_key_stats_day(const char *prefix, time_t t, char *buf, size_t len)
{
    char stamp[32];
    wk_fmt_stamp(t - t % 86400, stamp, sizeof(stamp));
    return key_fmt(buf, len, "%sstats:day:%.8s", prefix, stamp);
}

static bool key_minute(const char *prefix, const char *what, time_t t,
                       char *buf, size_t len)
{
    char stamp[32];
    wk_fmt_stamp(t - t % 60, stamp, sizeof(stamp));
    return key_fmt(buf, len, "%s%s:%.13s", prefix, what, stamp);
}

bool q_key_ttr(const char *prefix, time_t t, char *buf, size_t len)
{
    return key_minute(prefix, "ttr", t, buf, len);
}

bool q_key_ttc(const char *prefix, time_t t, char *buf, size_t len)
{
    return key_minute(prefix, "ttc", t, buf, len);
}

bool q_key_want(const char *prefix, const char *space_id, char *buf, size_t len)
{
    return key_fmt(buf, len, "%swant:%s", prefix, space_id);
}

bool q_key_mf(const char *prefix, const char *space_id, char *buf, size_t len)
{
    return key_fmt(buf, len, "%smf:%s", prefix, space_id);
}

const char *q_key_lane_of(const char *prefix, const char *key)
{
    size_t pl = strlen(prefix);
    if (strncmp(key, prefix, pl) == 0)
        return key + pl;
    return Q_LANE_NORMAL;
}

const char *q_key_job_id_of(const char *prefix, const char *key)
{
    size_t pl = strlen(prefix);
    if (strncmp(key, prefix, pl) != 0 || strncmp(key + pl, "job:", 4) != 0)
        return NULL;
    return key + pl + 4;
}
