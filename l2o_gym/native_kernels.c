/* Compiled CPU kernels for the environment step (see l2o_gym/native_kernel.py): the coordinatewise
   rows written in one pass, and the optimization state's transition around the loss in three
   passes over [B, d] (OptimizationState.advance, whose float32 arithmetic this is).

   Rows: the per-coordinate features are computed a block of coordinates at a time into small
   arrays (loops the compiler vectorizes), then each row is assembled: the coordinate's
   log-gradient window, the instance's change window, the nine features. The arithmetic is that
   of l2o_gym.features in float32 (the window averages divided in float64 and rounded once, as
   there); log is a polynomial (Cephes' logf, within about 1e-7 relative), so signed_log agrees
   with torch's within a few 1e-8. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 256
#define MAX_BETAS 8

static const float SIGNED_LOG_EPS = 1e-8f;

static inline float log_positive(float x) { /* x > 0, finite */
    uint32_t bits;
    memcpy(&bits, &x, 4);
    int exponent = (int)((bits >> 23) & 0xff) - 126; /* x = m * 2^exponent, m in [0.5, 1) */
    bits = (bits & 0x007fffffu) | 0x3f000000u;
    float m;
    memcpy(&m, &bits, 4);
    int low = m < 0.707106781186547524f;
    float e = (float)(exponent - low);
    m = (low ? m + m : m) - 1.0f;
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    return m + y + 0.693359375f * e;
}

static inline float signed_log(float v, float log_eps, float norm) {
    float magnitude = (log_positive(fabsf(v) + SIGNED_LOG_EPS) - log_eps) / norm;
    return v > 0.0f ? magnitude : (v < 0.0f ? -magnitude : 0.0f);
}

static inline float clip_unit(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

/* out [B, D, F]: columns 0 .. 2H + 3 + 2n - 1 of every row (the rest is left as it is).
   log_grad [B, D, 2H] (time last) and change [B, 2H] (heads: their oldest slots); last_step,
   grad [B, D]; sums [n, B, D] and totals [n, B] (float64: the decayed gradient sums and the filled
   weights' sums), square_sums [B, D] and square_totals [B] likewise for RMS_BETA. */
void coordinatewise_rows(float *out, int64_t batch, int64_t dim, int64_t width, int64_t history,
                         const float *log_grad, int64_t grad_head, const float *change, int64_t change_head,
                         const float *last_step, const float *grad, int64_t num_betas, const double *sums,
                         const double *totals, const double *square_sums, const double *square_totals,
                         float action_scale, float signed_log_norm) {
    const float log_eps = log_positive(SIGNED_LOG_EPS);
    const float tiny = 1.17549435e-38f;
    const int64_t count = batch * dim;
    float features[3 + 2 * MAX_BETAS][BLOCK];
    double total[MAX_BETAS + 1][BLOCK];
    int64_t instance[BLOCK];
    for (int64_t start = 0; start < count; start += BLOCK) {
        const int64_t len = count - start < BLOCK ? count - start : BLOCK;
        for (int64_t j = 0; j < len;) { /* each coordinate's instance: no division per entry */
            const int64_t b = (start + j) / dim;
            int64_t run = (b + 1) * dim - (start + j);
            if (run > len - j) run = len - j;
            for (int64_t r = 0; r < run; ++r) instance[j + r] = b;
            for (int64_t k = 0; k < num_betas; ++k)
                for (int64_t r = 0; r < run; ++r) total[k][j + r] = totals[k * batch + b];
            for (int64_t r = 0; r < run; ++r) total[num_betas][j + r] = square_totals[b];
            j += run;
        }
        const float *step = last_step + start, *g = grad + start;
        for (int64_t j = 0; j < len; ++j) {
            features[0][j] = signed_log(step[j], log_eps, signed_log_norm);
            features[1][j] = g[j] / (fabsf(g[j]) + 1.0f);
            features[2][j] = clip_unit(step[j] / action_scale);
        }
        float rms[BLOCK];
        const double *square = square_sums + start;
        for (int64_t j = 0; j < len; ++j) {
            float root = sqrtf((float)(square[j] / total[num_betas][j]));
            rms[j] = root < tiny ? tiny : root;
        }
        for (int64_t k = 0; k < num_betas; ++k) {
            const double *sum = sums + k * count + start;
            for (int64_t j = 0; j < len; ++j) {
                float average = (float)(sum[j] / total[k][j]);
                features[3 + k][j] = signed_log(average, log_eps, signed_log_norm);
                features[3 + num_betas + k][j] = clip_unit(average / rms[j]);
            }
        }
        const int64_t extra = 3 + 2 * num_betas;
        for (int64_t j = 0; j < len; ++j) {
            const int64_t index = start + j;
            float *row = out + index * width;
            memcpy(row, log_grad + index * 2 * history + grad_head, (size_t)history * sizeof(float));
            memcpy(row + history, change + instance[j] * 2 * history + change_head, (size_t)history * sizeof(float));
            for (int64_t c = 0; c < extra; ++c) row[2 * history + c] = features[c][j];
        }
    }
}

/* step = clip(action, -1, 1) * scale where the action is finite, NaN where it is not (so that the
   state counts the step as diverging); count = B * d. */
void scaled_actions(int64_t count, const float *action, float scale, float *step) {
    for (int64_t k = 0; k < count; ++k) {
        const float a = action[k];
        step[k] = isfinite(a) ? (a < -1.0f ? -1.0f : (a > 1.0f ? 1.0f : a)) * scale : NAN;
    }
}

/* Whether a float is not finite (inf or NaN: every exponent bit set), as a 0/1 integer: OR-ed over a
   row, one pass the compiler vectorizes (a float64 sum of the row, finite exactly when every entry
   is, decides the same). */
static inline uint32_t not_finite_bits(float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return (bits & 0x7f800000u) == 0x7f800000u;
}

/* safe_step: step where its row is finite, else 0; x_new = x + safe_step; step_finite [B]. */
void transition_start(int64_t batch, int64_t dim, const float *x, const float *step, float *safe_step, float *x_new,
                      uint8_t *step_finite) {
    for (int64_t b = 0; b < batch; ++b) {
        const float *s = step + b * dim;
        uint32_t bad = 0;
        for (int64_t i = 0; i < dim; ++i) bad |= not_finite_bits(s[i]);
        const int finite = !bad;
        step_finite[b] = (uint8_t)finite;
        for (int64_t i = 0; i < dim; ++i) {
            const int64_t k = b * dim + i;
            safe_step[k] = finite ? s[i] : 0.0f;
            x_new[k] = x[k] + safe_step[k];
        }
    }
}

/* moved [B]: active and the step kept x, f and ∇f finite and f below f0's explosion limit;
   diverged_now [B]: active and not so. Returns how many rows did not move. */
int64_t transition_check(int64_t batch, int64_t dim, const float *x_new, const float *f_new, const float *grad_new,
                         const uint8_t *step_finite, const float *f0, float explode_ratio, const uint8_t *diverged,
                         uint8_t *moved, uint8_t *diverged_now) {
    int64_t frozen = 0;
    for (int64_t b = 0; b < batch; ++b) {
        uint32_t bad = not_finite_bits(f_new[b]);
        for (int64_t i = 0; i < dim; ++i)
            bad |= not_finite_bits(x_new[b * dim + i]) | not_finite_bits(grad_new[b * dim + i]);
        const float limit = f0[b] + explode_ratio * (fabsf(f0[b]) + 1.0f);
        const int ok = step_finite[b] && !bad && f_new[b] <= limit;
        const int active = !diverged[b];
        moved[b] = (uint8_t)(active && ok);
        diverged_now[b] = (uint8_t)(active && !ok);
        frozen += !(active && ok);
    }
    return frozen;
}

/* Write item [B, D] at slot `head` (and head + H) of a window buffer in layout 0: [2H, B, D]
   (time first), 1: [B, 2H, D] (batch first) or 2: [B, D, 2H] (time last). */
static void write_slot(float *buffer, int64_t layout, int64_t history, int64_t head, int64_t batch, int64_t dim,
                       const float *item) {
    const size_t bytes = (size_t)dim * sizeof(float);
    if (layout == 0) {
        memcpy(buffer + head * batch * dim, item, bytes * (size_t)batch);
        memcpy(buffer + (head + history) * batch * dim, item, bytes * (size_t)batch);
    } else if (layout == 1) { /* two short runs per instance: written in one loop (a call per run
                                 costs more than its few floats) */
        for (int64_t b = 0; b < batch; ++b) {
            float *first = buffer + (b * 2 * history + head) * dim, *second = first + history * dim;
            const float *source = item + b * dim;
            for (int64_t i = 0; i < dim; ++i) first[i] = second[i] = source[i];
        }
    } else {
        for (int64_t k = 0; k < batch * dim; ++k)
            buffer[k * 2 * history + head] = buffer[k * 2 * history + head + history] = item[k];
    }
}

/* Every row moved: push ∇f (as it is and through signed_log), the step and the relative
   objective change (f_new - f) / (|f| + 1e-12), clipped to ±10, into their windows' head slots
   (heads and layouts: grad, log_grad, step, change (items [B], as D = 1)); scratch: [B, D + 1]. */
void transition_push(int64_t batch, int64_t dim, int64_t history, const float *grad_new, const float *safe_step,
                     const float *f_new, const float *f_old, float *grad_buffer, float *log_grad_buffer,
                     float *step_buffer, float *change_buffer, const int64_t *heads, const int64_t *layouts,
                     float *scratch, float signed_log_norm) {
    const float log_eps = log_positive(SIGNED_LOG_EPS);
    float *log_grad = scratch, *change = scratch + batch * dim;
    for (int64_t k = 0; k < batch * dim; ++k) log_grad[k] = signed_log(grad_new[k], log_eps, signed_log_norm);
    for (int64_t b = 0; b < batch; ++b) {
        const float relative = (f_new[b] - f_old[b]) / (fabsf(f_old[b]) + 1e-12f);
        change[b] = relative < -10.0f ? -10.0f : (relative > 10.0f ? 10.0f : relative);
    }
    write_slot(grad_buffer, layouts[0], history, heads[0], batch, dim, grad_new);
    write_slot(log_grad_buffer, layouts[1], history, heads[1], batch, dim, log_grad);
    write_slot(step_buffer, layouts[2], history, heads[2], batch, dim, safe_step);
    write_slot(change_buffer, layouts[3], history, heads[3], batch, 1, change);
}

/* transition_check, then, where every row moved, transition_push; returns how many rows did not
   move (0: the windows hold the new items). */
int64_t transition_finish(int64_t batch, int64_t dim, int64_t history, const float *x_new, const float *f_new,
                          const float *grad_new, const uint8_t *step_finite, const float *f0, float explode_ratio,
                          const uint8_t *diverged, uint8_t *moved, uint8_t *diverged_now, const float *safe_step,
                          const float *f_old, float *grad_buffer, float *log_grad_buffer, float *step_buffer,
                          float *change_buffer, const int64_t *heads, const int64_t *layouts, float *scratch,
                          float signed_log_norm) {
    const int64_t frozen = transition_check(batch, dim, x_new, f_new, grad_new, step_finite, f0, explode_ratio,
                                            diverged, moved, diverged_now);
    if (frozen == 0)
        transition_push(batch, dim, history, grad_new, safe_step, f_new, f_old, grad_buffer, log_grad_buffer,
                        step_buffer, change_buffer, heads, layouts, scratch, signed_log_norm);
    return frozen;
}

/* The log-suboptimality reward (l2o_gym.rewards.LogSuboptimalityReward) around torch's log, in
   its float32 arithmetic: first its two log arguments args [2, B], max(f_prev - f*, 0) / scale +
   eps and max(f - f*, 0) / scale + eps with scale = |f0 - f*| + 1e-12 (a NaN stays NaN, as
   torch's clamp_min keeps it); the caller takes their log in place. */
void log_gap_arguments(int64_t batch, const float *f_prev, const float *f, const float *f0, const float *f_star,
                       float eps, float *args) {
    for (int64_t b = 0; b < batch; ++b) {
        const float scale = fabsf(f0[b] - f_star[b]) + 1e-12f;
        const float before = f_prev[b] - f_star[b], after = f[b] - f_star[b];
        args[b] = (before < 0.0f ? 0.0f : before) / scale + eps;
        args[batch + b] = (after < 0.0f ? 0.0f : after) / scale + eps;
    }
}

/* Then the step's outcome (l2o_gym.episode_batch.EpisodeBatch.step): reward [B] = logs[0] -
   logs[1], or penalty * (horizon - t_before) where the instance diverged now (penalty: minus the
   divergence penalty); terminated = diverged now; truncated = not terminated and t >= horizon. */
void step_outcome(int64_t batch, const float *logs, const uint8_t *diverged_now, const int64_t *t_before,
                  const int64_t *t, const int64_t *horizon, float penalty, float *reward, uint8_t *terminated,
                  uint8_t *truncated) {
    for (int64_t b = 0; b < batch; ++b) {
        reward[b] = diverged_now[b] ? penalty * (float)(horizon[b] - t_before[b]) : logs[b] - logs[batch + b];
        terminated[b] = diverged_now[b];
        truncated[b] = (uint8_t)(!diverged_now[b] && t[b] >= horizon[b]);
    }
}

/* Decayed window sums (l2o_gym.decayed_window_sums), float64, in its torch arithmetic: a push's
   back sums, back[j] = beta[j] * back[j] + term for each β j of n over m values, the term the
   item [m] (float32) as it is or squared (power 2) in float64, products and sums rounded one by
   one (mul_ then add_); and the sums themselves, total[j] = back[j] + older[j] * weight[j] as one
   fused multiply-add (as torch's addcmul computes it on this CPU). */
#pragma STDC FP_CONTRACT OFF
void decayed_push(int64_t n, int64_t m, const double *beta, double *back, const float *item, int64_t power) {
    for (int64_t j = 0; j < n; ++j) {
        double *row = back + j * m;
        const double b = beta[j];
        if (power == 2) {
            for (int64_t k = 0; k < m; ++k) {
                const double v = (double)item[k], square = v * v, scaled = b * row[k];
                row[k] = scaled + square;
            }
        } else {
            for (int64_t k = 0; k < m; ++k) {
                const double scaled = b * row[k];
                row[k] = scaled + (double)item[k];
            }
        }
    }
}

void decayed_total(int64_t n, int64_t m, const double *back, const double *older, const double *weight,
                   double *total) {
    for (int64_t j = 0; j < n; ++j) {
        const double w = weight[j];
        for (int64_t k = 0; k < m; ++k) total[j * m + k] = fma(older[j * m + k], w, back[j * m + k]);
    }
}
