/* The process-wide counters of S3 requests over every client
 * (s3_http_stats): attempts, retries, bytes each way, attempts in flight
 * and failed attempts by code, behind one mutex. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "storage/s3_http_int.h"

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static struct s3_http_stats stats;

void s3_stats_attempt(CURL *easy, const struct wk_err *e, bool retry)
{
    curl_off_t up = 0, down = 0;

    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    pthread_mutex_lock(&stats_mu);
    stats.requests++;
    stats.retries += retry;
    stats.bytes_sent += up > 0 ? (uint64_t)up : 0;
    stats.bytes_received += down > 0 ? (uint64_t)down : 0;
    stats.in_flight--;
    if (e->code != WK_OK) {
        char code[sizeof(stats.errors[0].code)];
        size_t i;
        if (e->s3_code[0])
            snprintf(code, sizeof(code), "%.39s", e->s3_code);
        else if (e->http_status)
            snprintf(code, sizeof(code), "HTTP %ld", (long)e->http_status);
        else
            snprintf(code, sizeof(code), "%s", wk_code_name(e->code));
        for (i = 0; i < stats.n_errors; i++)
            if (strcmp(stats.errors[i].code, code) == 0)
                break;
        if (i == stats.n_errors) {
            if (stats.n_errors < S3_STATS_CODES) {
                stats.n_errors++;
                snprintf(stats.errors[i].code, sizeof(stats.errors[i].code),
                         "%s", i == S3_STATS_CODES - 1 ? "other" : code);
            } else {
                i = S3_STATS_CODES - 1;
            }
        }
        stats.errors[i].count++;
    }
    pthread_mutex_unlock(&stats_mu);
}

void s3_http_stats(struct s3_http_stats *out)
{
    pthread_mutex_lock(&stats_mu);
    *out = stats;
    pthread_mutex_unlock(&stats_mu);
}

void s3_stats_in_flight(int delta)
{
    pthread_mutex_lock(&stats_mu);
    stats.in_flight += delta;
    pthread_mutex_unlock(&stats_mu);
}
