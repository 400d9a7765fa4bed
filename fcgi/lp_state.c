/* lp_state: the few process-wide counters and flags every thread of a
 * chat-fcgi worker reads. Its own file, depending on nothing, so that no
 * file depends on lp_main.c (which depends on all of them). The
 * configuration is lp_main.c's and is passed down to each part's init. */
#include "lp.h"

atomic_bool lp_stopping;
atomic_int lp_parked;
atomic_uint lp_listen_gen;
atomic_bool lp_listen_up;
atomic_ulong lp_db_timeouts;
atomic_ulong lp_resets;
