/* progress: the throttle between a job and its sink (see progress.h). */
#include "jobs/progress.h"

#include <string.h>
#include <time.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void prog_init(struct prog *p, struct prog_sink *sink)
{
    memset(p, 0, sizeof(*p));
    p->sink = sink;
    p->st.phase = "starting";
    p->last_ms = -1;
}

void prog_update(struct prog *p, bool force)
{
    int64_t now = mono_ms();
    int pct;

    /* bytes dominate the time; an all-empty space counts files instead */
    if (p->st.bytes_total > 0)
        pct = (int)(p->st.bytes_done * 100 / p->st.bytes_total);
    else if (p->st.files_total > 0)
        pct = (int)(p->st.files_done * 100 / p->st.files_total);
    else
        pct = 0;
    if (pct > 100)
        pct = 100;
    /* 100 means done: only the job's end reports it */
    if (pct == 100 && !force)
        pct = 99;
    if (pct > p->st.progress)
        p->st.progress = pct;
    if (!p->sink)
        return;
    if (!force && p->last_ms >= 0 && now - p->last_ms < PROG_MIN_INTERVAL_MS)
        return;
    p->last_ms = now;
    p->sink->ops->update(p->sink, &p->st);
}

void prog_checkpoint(struct prog *p, const char *json)
{
    if (p->sink && p->sink->ops->checkpoint)
        p->sink->ops->checkpoint(p->sink, json);
}

void prog_milestone(struct prog *p, enum prog_milestone m, int64_t ms)
{
    if (p->sink && p->sink->ops->milestone)
        p->sink->ops->milestone(p->sink, m, ms);
}

size_t prog_wants(struct prog *p, char (*out)[PROG_WANT_PATH_MAX + 1],
                  size_t max)
{
    if (!p->sink || !p->sink->ops->wants || max == 0)
        return 0;
    return p->sink->ops->wants(p->sink, out, max);
}

void prog_served(struct prog *p, const char *path, bool found)
{
    if (p->sink && p->sink->ops->served)
        p->sink->ops->served(p->sink, path, found);
}
