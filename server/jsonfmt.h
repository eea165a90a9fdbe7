/* JSON text as the daemon writes it: jansson's output with every real number
 * in the shortest form that reads back as the same double ("0.1", not
 * jansson's "%.17g" "0.10000000000000001"), and float32 values turned into
 * reals that print as the shortest decimal of the float (a state of 0.1f is
 * "0.1", not "0.10000000149011612"). Every JSON body, NDJSON line and log
 * line of gtmsmd goes through jsonfmt_dumps. */
#ifndef GTMSMD_JSONFMT_H
#define GTMSMD_JSONFMT_H

#include <jansson.h>
#include <stddef.h>

/* json_dumps(j, flags) (j borrowed) with the reals rewritten. Returns a new
 * NUL-terminated string (caller frees with free()), or NULL on OOM. */
char *jsonfmt_dumps(const json_t *j, size_t flags);

/* A real whose value is the shortest decimal (at most 9 significant digits)
 * that reads back as f in float32. New reference (NULL for NaN/Inf, as
 * json_real). */
json_t *jsonfmt_real_f32(float f);
/* An array of n such reals (v borrowed). New reference, or NULL when a value
 * is NaN/Inf (a state the model should never produce: the caller answers
 * 500 instead of sending a shorter array) or on OOM. */
json_t *jsonfmt_f32_array(const float *v, int n);

/* Writes into out (outlen >= 32) the shortest "%.{p}g" form of v that reads
 * back as v, in fixed notation where %.17g would use it, with ".0" added to
 * an integral value (so a real stays a real) and the exponent written as jansson
 * does ("1e22", "1.5e-7"). Returns the length. */
size_t jsonfmt_format_double(char *out, size_t outlen, double v);

#endif
