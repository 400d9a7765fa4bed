/* lp_metrics: GET /chat/metrics, the Prometheus text (format 0.0.4) of
 * every chat process on this host: the sums of the metrics files of
 * --metrics-dir (core/chat_metrics.h). Served only where nginx passes
 * CHAT_ADMIN on (a location the admin restricts, conf/chat-locations.conf);
 * elsewhere 403. */
#include "lp.h"

#include <stdio.h>
#include <stdlib.h>

#include "chat_log.h"
#include "chat_metrics.h"

static const struct lp_config *conf; /* given at init */

void lp_metrics_init(const struct lp_config *cfg)
{
    conf = cfg;
}

static void add_block(const struct chat_metrics_block *b, int64_t rss, void *arg)
{
    chat_metrics_sum_add(arg, b, rss);
}

void lp_metrics(struct lp_req *r)
{
    struct chat_metrics_sum sums[CHAT_MD_NUM] = {{0}};
    size_t len;

    if (!r->admin)
        return (void)lp_reply_error(&r->conn, CHAT_E_FORBIDDEN,
                                    "metrics are served on the admin's location only");
    if (conf->metrics_dir == NULL || chat_metrics_each(conf->metrics_dir, add_block, sums) < 0)
        return (void)lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "no metrics directory");
    char *text = chat_metrics_format(sums, &len);
    if (text == NULL)
        return (void)lp_reply_error(&r->conn, CHAT_E_UNAVAILABLE, "out of memory");
    char head[200];
    int hl = snprintf(head, sizeof(head),
                      "Status: 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                      "Cache-Control: no-store\r\nContent-Length: %zu\r\n\r\n",
                      len);
    if (lp_stream_records(&r->conn, head, (size_t)hl, false, true) < 0 ||
        lp_stream_records(&r->conn, text, len, true, true) < 0)
        log_debug("metrics %d: could not answer", r->conn.id);
    lp_conn_drop(&r->conn);
    free(text);
}
