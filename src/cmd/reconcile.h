/*
 * `seckill reconcile --redis URL --mysql URL [--repair]`: compares the distributed
 * deployment's hot state (Redis) with its SQL copy and reports every difference, each with
 * the copy that is ahead (holds the grant, or the lower count left); with --repair it also
 * fixes them, taking the union of the grants (a grant in either place is a grant: it was
 * answered 201) and setting `left` / `remaining` to amount minus the grants. When that
 * union exceeds a coupon's amount (Redis lost grants in a failover and sold their stock
 * again), it says so and repairs nothing at all: the union would be an oversell.
 *
 * Grants still in the streams are first written to SQL (the persister's step), so that a
 * quiet deployment shows no difference.
 */
#ifndef SK_CMD_RECONCILE_H
#define SK_CMD_RECONCILE_H

#include <stdio.h>

/* Writes the report to `out`. Returns the exit status: 0 in agreement, 1 differences found
 * (repaired with `repair`), 3 a backend could not be reached or failed, 4 a coupon's grants
 * exceed its amount (nothing repaired). */
int sk_reconcile_run(const char *redis_url, const char *mysql_url, int repair, FILE *out);

#endif
