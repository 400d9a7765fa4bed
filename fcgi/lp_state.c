/* lp_state: what every thread of a chat-fcgi worker reads: the
 * configuration (defaults here; lp_main.c's option parsing writes it once,
 * before any thread starts, and nobody writes it after) and the few
 * process-wide counters and flags. Its own file, depending on nothing, so
 * that no file depends on lp_main.c (which depends on all of them). */
#include "lp.h"

struct lp_config lp_cfg = {
    .threads = 4,
    .max_parked = LP_MAX_PARKED_DEFAULT,
    .send_rate = 10,
    .send_burst = 30,
    .req_rate = 50,
    .req_burst = 100,
    .rate_table = LP_RATE_TABLE_DEFAULT,
};
atomic_bool lp_stopping;
atomic_int lp_parked;
atomic_uint lp_listen_gen;
atomic_bool lp_listen_up;
