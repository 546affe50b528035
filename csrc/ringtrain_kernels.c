/* Reduction kernels for ringtrain's ring all-reduce: dst = op(a, b) [/ divisor], in one pass.
 *
 * Plain C99 loops (the compiler vectorises them) behind a thin CPython wrapper: buffers come in
 * through the buffer protocol and the loops run with the GIL released, so the communication
 * thread's reductions do not stall Python threads. Two things NumPy cannot do in one pass pay
 * here: float16 arithmetic (NumPy converts element by element; we use the F16C instructions
 * where the CPU has them, a portable bit-exact conversion otherwise) and AVG's division fused
 * into the sum. Built as an optional extension: ringtrain falls back to NumPy without it.
 *
 * Module ringtrain._ckernels:
 *   reduce3(dst, a, b, code, op, divisor)   op: 0 sum, 1 min, 2 max; divisor 1 = none
 *   copy(dst, src[, stream])                dst = src (bytes); stream: non-temporal stores
 *   scale(dst, code, divisor)               dst /= divisor (floating codes only)
 *   step(mine, left, right, value)          the ring's neighbour barrier on shared 8-byte flags
 *   ring_shm(src, dst, scratch, ...)        a whole shared-memory ring all-reduce (the steps
 *                                           of MPICommunicator._ring_shm in one call)
 *   peer_reduce(dst, own, scratch, sources, targets, code, op, divisor[, stream])
 *                                           dst = op over the ranks' buffers, the others' read
 *                                           straight from their processes, and the result
 *                                           written into theirs (process_vm_readv/writev)
 *   peer_read(dst, pid, address)            dst = bytes of another process's memory
 *   peer_write(src, pid, address)           another process's memory = src
 *   allow_peer_access()                     lets processes of this user access ours (Yama)
 *   Streaming stores are for a large destination that is not in cache: ordinary stores first
 *   read every line they write ("read for ownership"), so a copy into a cold destination
 *   moves three bytes over the memory bus per byte copied instead of two.
 *   DTYPES: the accepted codes, NumPy's kind + itemsize ("f2", "f4", "f8", "i4", "u1", "b1"...)
 *   F16C: whether the float16 loops use the F16C instructions on this CPU
 *   STREAM: whether streaming stores are in use (x86-64: SSE2's movntdq; elsewhere a plain copy)
 *   CROSS_MEMORY: whether peer_reduce, peer_read and peer_write exist (Linux)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef __linux__
#include <errno.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/uio.h>
#define HAVE_CROSS_MEMORY 1
#endif

enum { OP_SUM = 0, OP_MIN = 1, OP_MAX = 2 };

/* ---------------------------------------------------------------- float16 <-> float32 (IEEE) */

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {                       /* subnormal half: normalise */
            int shift = 0;
            while ((mant & 0x400u) == 0) {
                mant <<= 1;
                shift++;
            }
            mant &= 0x3ffu;
            bits = sign | ((uint32_t)(127 - 15 - shift + 1) << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);   /* inf or nan (payload kept) */
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t float_to_half(float f)   /* round to nearest, ties to even, like NumPy */
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {                            /* inf or nan */
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
    }
    if (ax >= 0x477ff000u) {                            /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) {                             /* below the smallest normal half */
        if (ax < 0x33000000u) {                         /* below half the smallest subnormal */
            return sign;
        }
        /* subnormal half: round(f / 2^-24) = round(m * 2^(e - 126)), 14 <= shift <= 24 */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;
        uint32_t half_m = m >> shift;
        uint32_t rest = m & ((1u << shift) - 1u);
        uint32_t halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half_m & 1u))) {
            half_m++;
        }
        return (uint16_t)(sign | half_m);
    }
    uint32_t e = (ax >> 23) - 127 + 15;
    uint32_t m = ax & 0x7fffffu;
    uint32_t half = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) {
        half++;                                          /* may carry into the exponent: ok */
    }
    return (uint16_t)(sign | half);
}

static void f16_portable(uint16_t *dst, const uint16_t *a, const uint16_t *b, Py_ssize_t n,
                         int op, float divisor)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        float x = half_to_float(a[i]), y = half_to_float(b[i]), r;
        if (op == OP_SUM || x != x || y != y) {
            r = x + y;                          /* min/max propagate nan, as NumPy's do */
        } else if (op == OP_MIN) {
            r = y < x ? y : x;
        } else {
            r = y > x ? y : x;
        }
        if (divisor != 1.0f) {
            r = r / divisor;
        }
        dst[i] = float_to_half(r);
    }
}

static void f16_scale_portable(uint16_t *dst, Py_ssize_t n, float divisor)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        dst[i] = float_to_half(half_to_float(dst[i]) / divisor);
    }
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define HAVE_F16C_PATH 1

__attribute__((target("avx2,f16c")))
static void f16_f16c(uint16_t *dst, const uint16_t *a, const uint16_t *b, Py_ssize_t n, int op,
                     float divisor)
{
    Py_ssize_t i = 0;
    const __m256 d = _mm256_set1_ps(divisor);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256 y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i)));
        __m256 r;
        __m256 sum = _mm256_add_ps(x, y);
        if (op == OP_SUM) {
            r = sum;
        } else {
            /* min/max propagate nan, as NumPy's do: take x + y (a nan) where unordered */
            r = op == OP_MIN ? _mm256_min_ps(y, x) : _mm256_max_ps(y, x);
            r = _mm256_blendv_ps(r, sum, _mm256_cmp_ps(x, y, _CMP_UNORD_Q));
        }
        if (divisor != 1.0f) {
            r = _mm256_div_ps(r, d);
        }
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT));
    }
    f16_portable(dst + i, a + i, b + i, n - i, op, divisor);
}

__attribute__((target("avx2,f16c")))
static void f16_scale_f16c(uint16_t *dst, Py_ssize_t n, float divisor)
{
    Py_ssize_t i = 0;
    const __m256 d = _mm256_set1_ps(divisor);
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dst + i)));
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_div_ps(x, d), _MM_FROUND_TO_NEAREST_INT));
    }
    f16_scale_portable(dst + i, n - i, divisor);
}
#endif

static int use_f16c = 0;

/* ------------------------------------------------------------------ the other dtypes */

/* On x86-64 Linux with GCC or Clang, each loop is compiled for AVX-512, AVX2 and the baseline,
 * and the loader picks the best one for this CPU (as NumPy's own dispatch does); elsewhere
 * the plain loop. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
#define MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MULTIVERSION
#endif

/* Integers wrap around like NumPy's (computed unsigned: signed overflow is undefined in C). */
#define INT_LOOPS(NAME, T, U)                                                                  \
    MULTIVERSION static void NAME(T *dst, const T *a, const T *b, Py_ssize_t n, int op)            \
    {                                                                                          \
        Py_ssize_t i;                                                                          \
        if (op == OP_SUM) {                                                                    \
            for (i = 0; i < n; i++) dst[i] = (T)((U)a[i] + (U)b[i]);                           \
        } else if (op == OP_MIN) {                                                             \
            for (i = 0; i < n; i++) dst[i] = b[i] < a[i] ? b[i] : a[i];                        \
        } else {                                                                               \
            for (i = 0; i < n; i++) dst[i] = b[i] > a[i] ? b[i] : a[i];                        \
        }                                                                                      \
    }

INT_LOOPS(loop_i1, int8_t, uint8_t)
INT_LOOPS(loop_i2, int16_t, uint16_t)
INT_LOOPS(loop_i4, int32_t, uint32_t)
INT_LOOPS(loop_i8, int64_t, uint64_t)
INT_LOOPS(loop_u1, uint8_t, uint8_t)
INT_LOOPS(loop_u2, uint16_t, uint16_t)
INT_LOOPS(loop_u4, uint32_t, uint32_t)
INT_LOOPS(loop_u8, uint64_t, uint64_t)

/* Like NumPy's minimum/maximum, min and max propagate a nan from either side. */
#define FLOAT_LOOPS(NAME, SCALE, T)                                                            \
    MULTIVERSION static void NAME(T *dst, const T *a, const T *b, Py_ssize_t n, int op, T divisor) \
    {                                                                                          \
        Py_ssize_t i;                                                                          \
        if (op == OP_SUM) {                                                                    \
            if (divisor != (T)1) {                                                             \
                for (i = 0; i < n; i++) dst[i] = (a[i] + b[i]) / divisor;                      \
            } else {                                                                           \
                for (i = 0; i < n; i++) dst[i] = a[i] + b[i];                                  \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (i = 0; i < n; i++) {                                                              \
            T x = a[i], y = b[i];                                                              \
            T r = (x != x) ? x : (y != y) ? y : (op == OP_MIN ? (y < x ? y : x)                \
                                                               : (y > x ? y : x));             \
            dst[i] = divisor != (T)1 ? r / divisor : r;                                        \
        }                                                                                      \
    }                                                                                          \
    MULTIVERSION static void SCALE(T *dst, Py_ssize_t n, T divisor)                                \
    {                                                                                          \
        for (Py_ssize_t i = 0; i < n; i++) dst[i] = dst[i] / divisor;                          \
    }

FLOAT_LOOPS(loop_f4, scale_f4, float)
FLOAT_LOOPS(loop_f8, scale_f8, double)

static void loop_b1(uint8_t *dst, const uint8_t *a, const uint8_t *b, Py_ssize_t n, int op)
{
    Py_ssize_t i;
    if (op == OP_MIN) {
        for (i = 0; i < n; i++) dst[i] = (uint8_t)(a[i] && b[i]);
    } else {
        for (i = 0; i < n; i++) dst[i] = (uint8_t)(a[i] || b[i]);
    }
}

/* ------------------------------------------------------------------ streaming stores */

#if defined(__GNUC__) && defined(__x86_64__)
#include <emmintrin.h>
#define HAVE_STREAM_PATH 1
#endif

static int use_stream = 0;

/* dst = src, n bytes, the whole cache lines of dst written with non-temporal stores (they go to
 * memory through write-combining buffers without reading the line first); the ragged head and
 * tail go through memcpy. Ends with a store fence, so the data is globally visible (to the other
 * ranks too) before the caller's next store, e.g. a flag or an MPI call. */
static void copy_stream(char *dst, const char *src, size_t n)
{
#ifdef HAVE_STREAM_PATH
    if (use_stream && n >= 128) {
        size_t head = (64 - ((uintptr_t)dst & 63)) & 63;
        memcpy(dst, src, head);
        dst += head;
        src += head;
        n -= head;
        size_t body = n & ~(size_t)63;
        for (size_t i = 0; i < body; i += 64) {
            __m128i x0 = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i x1 = _mm_loadu_si128((const __m128i *)(src + i + 16));
            __m128i x2 = _mm_loadu_si128((const __m128i *)(src + i + 32));
            __m128i x3 = _mm_loadu_si128((const __m128i *)(src + i + 48));
            _mm_stream_si128((__m128i *)(dst + i), x0);
            _mm_stream_si128((__m128i *)(dst + i + 16), x1);
            _mm_stream_si128((__m128i *)(dst + i + 32), x2);
            _mm_stream_si128((__m128i *)(dst + i + 48), x3);
        }
        _mm_sfence();
        memcpy(dst + body, src + body, n - body);
        return;
    }
#endif
    memcpy(dst, src, n);
}

/* One reduction loop per dtype code; returns 0 for an unknown code. */
static int reduce_loop(char kind, int size, void *dst, const void *a, const void *b,
                       Py_ssize_t n, int op, double divisor)
{
    if (kind == 'f' && size == 4) {
        loop_f4(dst, a, b, n, op, (float)divisor);
    } else if (kind == 'f' && size == 8) {
        loop_f8(dst, a, b, n, op, divisor);
    } else if (kind == 'f' && size == 2) {
#ifdef HAVE_F16C_PATH
        if (use_f16c) {
            f16_f16c(dst, a, b, n, op, (float)divisor);
        } else
#endif
        f16_portable(dst, a, b, n, op, (float)divisor);
    } else if (kind == 'i' && size == 1) {
        loop_i1(dst, a, b, n, op);
    } else if (kind == 'i' && size == 2) {
        loop_i2(dst, a, b, n, op);
    } else if (kind == 'i' && size == 4) {
        loop_i4(dst, a, b, n, op);
    } else if (kind == 'i' && size == 8) {
        loop_i8(dst, a, b, n, op);
    } else if (kind == 'u' && size == 1) {
        loop_u1(dst, a, b, n, op);
    } else if (kind == 'u' && size == 2) {
        loop_u2(dst, a, b, n, op);
    } else if (kind == 'u' && size == 4) {
        loop_u4(dst, a, b, n, op);
    } else if (kind == 'u' && size == 8) {
        loop_u8(dst, a, b, n, op);
    } else if (kind == 'b' && size == 1) {
        loop_b1(dst, a, b, n, op);
    } else {
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ step flags */

/* The shared-memory ring's step barrier, between neighbours only: publish my step count, then
 * wait until both neighbours have published at least as many. Release/acquire order the data a
 * rank wrote before its step against the reads its neighbours make after theirs. Spins briefly
 * (a neighbour on another core answers within a microsecond), then yields the core: on a busy
 * or oversubscribed machine the neighbour may need this very core to get there. */
#define SPINS_BEFORE_YIELD 256

static inline void cpu_relax(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
}

static void step_wait(uint64_t *mine, const uint64_t *left, const uint64_t *right, uint64_t step)
{
    __atomic_store_n(mine, step, __ATOMIC_RELEASE);
    int spins = 0;
    while (__atomic_load_n(left, __ATOMIC_ACQUIRE) < step
           || __atomic_load_n(right, __ATOMIC_ACQUIRE) < step) {
        if (++spins < SPINS_BEFORE_YIELD) {
            cpu_relax();
        } else {
            sched_yield();
        }
    }
}

/* ------------------------------------------------------------------ the shared-memory ring */

/* One all-reduce of `total` elements over the node's shared slots: the whole loop of
 * MPICommunicator._ring_shm (its docstring explains the schedule and the slots' reuse) without
 * returning to Python between steps, where a step costs microseconds of slicing and calls.
 * Chunk bounds follow ring.chunk_bounds.
 *
 * How a rank writes its slots is chosen as it runs. Through the cache, the neighbour reads the
 * lines from this core's cache, and rewriting them a step later first takes them back from the
 * neighbour's: cheap between cores that share a last-level cache, slow between dies or sockets
 * (this VM's two vCPUs move between such placements within seconds: 64 MiB in place took 14 ms
 * in one placement, 31 ms in the other). With streaming stores the slot goes to memory and
 * the neighbour reads it from there: twice the memory traffic, but no core waits on another's
 * cache (24 ms and 21 ms there). Each rank times its blocks (per byte, a moving average per
 * way; not the wait at a block's first step, which holds the ranks' arrival, e.g. at a call's
 * start) and writes the next block the cheaper way, trying the other way on every
 * EXPLORE_EVERY-th block, numbered from the step count so the ranks try it on the same blocks.
 * Either way the same bits land in the slots, so ranks that choose differently still agree on
 * the result. */
#define EXPLORE_EVERY 16

typedef struct {
    const char *src;
    char *dst, *scratch;           /* scratch: one chunk, private, for streamed partial sums */
    char *mine[2];
    const char *theirs[2];
    uint64_t *flags[3];            /* mine, left, right */
    char kind;
    int size, op, n, first, stream;
    const long *rs, *ag;           /* the chunk received at each reduce-scatter / all-gather step */
    double divisor;
    Py_ssize_t total, per_chunk;
} RingShm;

/* seconds per byte of a block written through the cache [0] and with streaming stores [1],
 * moving averages over this process's blocks (0: not measured yet) */
static double slot_cost[2];
/* -1: choose by slot_cost; 0 or 1: always that way (set_slot_writes, for tests and benchmarks) */
static int slot_writes = -1;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void chunk_of(Py_ssize_t len, int n, long i, Py_ssize_t *a, Py_ssize_t *b)
{
    Py_ssize_t base = len / n, extra = len % n;
    *a = i * base + (i < extra ? i : extra);
    *b = *a + base + (i < extra ? 1 : 0);
}

static inline void put(char *to, const char *from, size_t n, int streamed)
{
    if (streamed) {
        copy_stream(to, from, n);
    } else {
        memcpy(to, from, n);
    }
}

static void ring_shm_run(const RingShm *r, int *slot_io, uint64_t *steps_io)
{
    const int n = r->n, sz = r->size;
    const Py_ssize_t block = (Py_ssize_t)n * r->per_chunk;
    int slot = *slot_io;
    uint64_t steps = *steps_io;
    Py_ssize_t a, b;
    for (Py_ssize_t start = 0; start < r->total; start += block) {
        Py_ssize_t len = r->total - start < block ? r->total - start : block;
        const char *src = r->src + start * sz;
        char *dst = r->dst + start * sz;
        int best = slot_cost[1] < slot_cost[0] ? 1 : 0;      /* unmeasured (0) is tried first */
        int streamed = slot_writes >= 0 ? slot_writes
                       : steps / (uint64_t)(2 * n - 2) % EXPLORE_EVERY == 0 ? !best : best;
        double began = now_seconds();
        chunk_of(len, n, r->first, &a, &b);
        put(r->mine[slot], src + a * sz, (size_t)(b - a) * sz, streamed);  /* our raw chunk */
        double arriving = now_seconds();
        step_wait(r->flags[0], r->flags[1], r->flags[2], ++steps);
        began += now_seconds() - arriving;     /* not timed: the ranks' arrival at the block */
        for (int s = 0; s < n - 1; s++) {
            chunk_of(len, n, r->rs[s], &a, &b);
            size_t bytes = (size_t)(b - a) * sz;
            const char *left = r->theirs[slot];
            slot ^= 1;
            char *out = streamed ? r->scratch : r->mine[slot];
            if (s < n - 2) {       /* a partial sum: only the right neighbour needs it */
                reduce_loop(r->kind, sz, out, src + a * sz, left, b - a, r->op, 1.0);
            } else {               /* the owned chunk is complete: pass it on and keep it */
                reduce_loop(r->kind, sz, out, src + a * sz, left, b - a, r->op, r->divisor);
                put(dst + a * sz, out, bytes, r->stream);
            }
            if (streamed) {
                copy_stream(r->mine[slot], out, bytes);
            }
            step_wait(r->flags[0], r->flags[1], r->flags[2], ++steps);
        }
        for (int s = 0; s < n - 1; s++) {
            chunk_of(len, n, r->ag[s], &a, &b);
            size_t bytes = (size_t)(b - a) * sz;
            const char *left = r->theirs[slot];
            put(dst + a * sz, left, bytes, r->stream);
            slot ^= 1;
            if (s < n - 2) {
                put(r->mine[slot], left, bytes, streamed);
                step_wait(r->flags[0], r->flags[1], r->flags[2], ++steps);
            }
        }
        double cost = (now_seconds() - began) / ((double)len * sz);
        slot_cost[streamed] += slot_cost[streamed] == 0.0 ? cost
                               : (cost - slot_cost[streamed]) / 4;
    }
    *slot_io = slot;
    *steps_io = steps;
}

/* ------------------------------------------------------------------ other ranks' memory */

#ifdef HAVE_CROSS_MEMORY
/* Single-copy transfers between the ranks of one node: process_vm_readv / process_vm_writev
 * copy between another process's buffer and ours (the kernel's cross-memory attach), where the
 * shared slots take two copies, into the slot and out of it, and every byte crosses memory
 * twice more. They need ptrace permission on the other process: the same user, and under
 * Yama's ptrace_scope 1 the other's consent (allow_peer_access). Returns 0 or an errno. */
static int transfer(char *local, pid_t pid, uint64_t remote, size_t n, int write)
{
    while (n > 0) {
        struct iovec here = {local, n};
        struct iovec there = {(void *)(uintptr_t)remote, n};
        ssize_t done = write ? process_vm_writev(pid, &here, 1, &there, 1, 0)
                             : process_vm_readv(pid, &here, 1, &there, 1, 0);
        if (done < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (done == 0) {
            return EFAULT;
        }
        local += done;
        remote += (uint64_t)done;
        n -= (size_t)done;
    }
    return 0;
}

typedef struct {
    pid_t pid;                     /* 0: in this process (a source: our own buffer) */
    uint64_t address;
} PeerBuffer;

/* dst = op(source 0, source 1, ..., source n-1), left to right, / divisor at the last step: the
 * order every chunk's owner uses, so the bits do not depend on who computes. Blocks of `block`
 * bytes: the others' parts are read into the first two thirds of scratch, so the operands stay
 * in cache; in place (own is dst) and third or later in the order, our part goes to the last
 * third first, as the sum overwrites it before its turn. With `stream` (out of place only)
 * the sum goes to that last third and then to dst with streaming stores, so a dst that is not
 * in cache is not read before it is written. Each finished block, still in cache, is then
 * written into every target: another process's (pid, address) by the kernel, or with pid 0 an
 * address in this process (another process's buffer in shared memory mapped here), streamed
 * like dst. Returns 0, or an errno with *failed the buffer that could not be
 * accessed (sources 0..n-1, then targets n..). */
static int peer_reduce_run(char kind, int size, char *dst, const char *own, char *scratch,
                           Py_ssize_t block, const PeerBuffer *sources, int n,
                           const PeerBuffer *targets, int n_targets, Py_ssize_t len, int op,
                           double divisor, int stream, int *failed)
{
    stream = stream && own != dst;
    int saved = 0;
    for (int q = 2; q < n; q++) {
        saved |= own == dst && sources[q].pid == 0;
    }
    for (Py_ssize_t off = 0; off < len; off += block) {
        size_t bytes = (size_t)(len - off < block ? len - off : block);
        const char *mine = own + off;
        if (saved) {
            memcpy(scratch + 2 * block, mine, bytes);
            mine = scratch + 2 * block;
        }
        char *out = stream ? scratch + 2 * block : dst + off;
        const char *acc = NULL;
        for (int q = 0; q < n; q++) {
            const char *operand = mine;
            if (sources[q].pid != 0) {
                char *into = scratch + (q == 0 ? 0 : block);
                int err = transfer(into, sources[q].pid, sources[q].address + (uint64_t)off,
                                   bytes, 0);
                if (err != 0) {
                    *failed = q;
                    return err;
                }
                operand = into;
            }
            if (q == 0) {
                acc = operand;
                continue;
            }
            reduce_loop(kind, size, out, acc, operand, (Py_ssize_t)bytes / size, op,
                        q == n - 1 ? divisor : 1.0);
            acc = out;
        }
        if (stream) {
            copy_stream(dst + off, out, bytes);
        }
        for (int t = 0; t < n_targets; t++) {
            if (targets[t].pid == 0) {      /* mapped here: shared memory of that process */
                char *there = (char *)(uintptr_t)(targets[t].address + (uint64_t)off);
                if (stream) {
                    copy_stream(there, out, bytes);
                } else {
                    memcpy(there, out, bytes);
                }
                continue;
            }
            int err = transfer(out, targets[t].pid, targets[t].address + (uint64_t)off,
                               bytes, 1);
            if (err != 0) {
                *failed = n + t;
                return err;
            }
        }
    }
    return 0;
}
#endif

/* ------------------------------------------------------------------ Python wrappers */

static int itemsize_of(const char *code)
{
    if (code[0] == '\0' || code[1] == '\0' || code[2] != '\0') {
        return 0;
    }
    switch (code[1]) {
    case '1': return 1;
    case '2': return 2;
    case '4': return 4;
    case '8': return 8;
    default: return 0;
    }
}

static PyObject *reduce3(PyObject *self, PyObject *args)
{
    Py_buffer dst, a, b;
    const char *code;
    int op;
    double divisor;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*y*sid", &dst, &a, &b, &code, &op, &divisor)) {
        return NULL;
    }
    PyObject *result = NULL;
    int size = itemsize_of(code);
    if (size == 0) {
        PyErr_Format(PyExc_ValueError, "reduce3: unknown dtype code %s", code);
        goto done;
    }
    if (op < OP_SUM || op > OP_MAX) {
        PyErr_Format(PyExc_ValueError, "reduce3: op must be 0, 1 or 2, got %d", op);
        goto done;
    }
    if (a.len != dst.len || b.len != dst.len || dst.len % size != 0) {
        PyErr_Format(PyExc_ValueError, "reduce3: buffers must have equal lengths, got %zd, %zd "
                     "and %zd bytes", dst.len, a.len, b.len);
        goto done;
    }
    if (divisor != 1.0 && code[0] != 'f') {
        PyErr_SetString(PyExc_ValueError, "reduce3: a divisor needs a floating dtype");
        goto done;
    }
    int known;
    Py_BEGIN_ALLOW_THREADS
    known = reduce_loop(code[0], size, dst.buf, a.buf, b.buf, dst.len / size, op, divisor);
    Py_END_ALLOW_THREADS
    if (!known) {
        PyErr_Format(PyExc_ValueError, "reduce3: unknown dtype code %s", code);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&dst);
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return result;
}

static PyObject *scale(PyObject *self, PyObject *args)
{
    Py_buffer dst;
    const char *code;
    double divisor;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*sd", &dst, &code, &divisor)) {
        return NULL;
    }
    PyObject *result = NULL;
    int size = itemsize_of(code);
    if (code[0] != 'f' || size < 2 || dst.len % size != 0) {
        PyErr_Format(PyExc_ValueError, "scale: needs a floating dtype code, got %s", code);
        goto done;
    }
    Py_ssize_t n = dst.len / size;
    Py_BEGIN_ALLOW_THREADS
    if (size == 4) {
        scale_f4(dst.buf, n, (float)divisor);
    } else if (size == 8) {
        scale_f8(dst.buf, n, divisor);
    } else {
#ifdef HAVE_F16C_PATH
        if (use_f16c) {
            f16_scale_f16c(dst.buf, n, (float)divisor);
        } else
#endif
        f16_scale_portable(dst.buf, n, (float)divisor);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&dst);
    return result;
}

static PyObject *copy_bytes(PyObject *self, PyObject *args)
{
    Py_buffer dst, src;
    int stream = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*|p", &dst, &src, &stream)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (src.len != dst.len) {
        PyErr_Format(PyExc_ValueError, "copy: buffers must have equal lengths, got %zd and %zd "
                     "bytes", dst.len, src.len);
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    if (stream) {
        copy_stream(dst.buf, src.buf, (size_t)dst.len);
    } else {
        memmove(dst.buf, src.buf, (size_t)dst.len);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&dst);
    PyBuffer_Release(&src);
    return result;
}

/* Whether the three step flags can hold a uint64_t each (8-byte aligned, 8 bytes long); sets a
 * ValueError naming the caller otherwise. */
static int flags_usable(const Py_buffer flags[3], const char *what)
{
    for (int i = 0; i < 3; i++) {
        if (flags[i].len < (Py_ssize_t)sizeof(uint64_t) || ((uintptr_t)flags[i].buf & 7) != 0) {
            PyErr_Format(PyExc_ValueError, "%s: flags must be 8-byte aligned, 8 bytes long",
                         what);
            return 0;
        }
    }
    return 1;
}

static PyObject *step(PyObject *self, PyObject *args)
{
    Py_buffer mine, left, right;
    unsigned long long value;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*w*w*K", &mine, &left, &right, &value)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_buffer all[3] = {mine, left, right};
    if (!flags_usable(all, "step")) {
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    step_wait(mine.buf, left.buf, right.buf, (uint64_t)value);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&mine);
    PyBuffer_Release(&left);
    PyBuffer_Release(&right);
    return result;
}

/* Reads a tuple of n - 1 chunk indices, each in [0, n), into out. */
static int chunk_list(PyObject *seq, int n, long *out, const char *what)
{
    if (!PyTuple_Check(seq) || PyTuple_GET_SIZE(seq) != n - 1) {
        PyErr_Format(PyExc_ValueError, "ring_shm: %s must be a tuple of world_size - 1 chunk "
                     "indices", what);
        return 0;
    }
    for (int i = 0; i < n - 1; i++) {
        out[i] = PyLong_AsLong(PyTuple_GET_ITEM(seq, i));
        if (out[i] == -1 && PyErr_Occurred()) {
            return 0;
        }
        if (out[i] < 0 || out[i] >= n) {
            PyErr_Format(PyExc_ValueError, "ring_shm: %s holds chunk %ld of %d", what, out[i], n);
            return 0;
        }
    }
    return 1;
}

static PyObject *ring_shm(PyObject *self, PyObject *args)
{
    Py_buffer src, dst, scratch, slots[4], flags[3];
    const char *code;
    int op, first, slot, stream;
    double divisor;
    unsigned long long steps;
    PyObject *rs_obj, *ag_obj;
    Py_ssize_t per_chunk;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*w*(w*w*)(y*y*)(w*y*y*)sidiOOniKp", &src, &dst, &scratch,
                          &slots[0], &slots[1], &slots[2], &slots[3], &flags[0], &flags[1],
                          &flags[2], &code, &op, &divisor, &first, &rs_obj, &ag_obj, &per_chunk,
                          &slot, &steps, &stream)) {
        return NULL;
    }
    PyObject *result = NULL;
    long *lists = NULL;
    RingShm r;
    r.size = itemsize_of(code);
    r.kind = code[0];
    int n = PyTuple_Check(rs_obj) ? (int)PyTuple_GET_SIZE(rs_obj) + 1 : 0;
    /* a loop over no element: 0 when no loop exists for the code */
    if (r.size == 0 || !reduce_loop(r.kind, r.size, NULL, NULL, NULL, 0, OP_SUM, 1.0)) {
        PyErr_Format(PyExc_ValueError, "ring_shm: unknown dtype code %s", code);
        goto done;
    }
    if (op < OP_SUM || op > OP_MAX || (divisor != 1.0 && r.kind != 'f')) {
        PyErr_Format(PyExc_ValueError, "ring_shm: op %d with divisor %g does not fit dtype %s",
                     op, divisor, code);
        goto done;
    }
    if (n < 2 || first < 0 || first >= n || (slot != 0 && slot != 1)) {
        PyErr_SetString(PyExc_ValueError, "ring_shm: needs 2 or more ranks, a first chunk in "
                        "[0, world_size) and slot 0 or 1");
        goto done;
    }
    if (src.len != dst.len || dst.len % r.size != 0) {
        PyErr_Format(PyExc_ValueError, "ring_shm: src and dst must have equal lengths, got %zd "
                     "and %zd bytes", src.len, dst.len);
        goto done;
    }
    Py_ssize_t slot_bytes = slots[0].len;
    for (int i = 1; i < 4; i++) {
        if (slots[i].len < slot_bytes) {
            slot_bytes = slots[i].len;
        }
    }
    r.per_chunk = per_chunk;
    if (per_chunk < 1 || per_chunk > slot_bytes / r.size || scratch.len < per_chunk * r.size) {
        PyErr_Format(PyExc_ValueError, "ring_shm: chunks of %zd elements need at least one "
                     "element, %zd bytes of slot and as many of scratch; the slots hold %zd, "
                     "the scratch %zd", per_chunk, per_chunk * r.size, slot_bytes, scratch.len);
        goto done;
    }
    if (!flags_usable(flags, "ring_shm")) {
        goto done;
    }
    lists = PyMem_Malloc(2 * (size_t)(n - 1) * sizeof(long));
    if (lists == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!chunk_list(rs_obj, n, lists, "rs") || !chunk_list(ag_obj, n, lists + n - 1, "ag")) {
        goto done;
    }
    r.src = src.buf;
    r.dst = dst.buf;
    r.scratch = scratch.buf;
    r.mine[0] = slots[0].buf;
    r.mine[1] = slots[1].buf;
    r.theirs[0] = slots[2].buf;
    r.theirs[1] = slots[3].buf;
    for (int i = 0; i < 3; i++) {
        r.flags[i] = flags[i].buf;
    }
    r.op = op;
    r.n = n;
    r.first = first;
    r.stream = stream;
    r.rs = lists;
    r.ag = lists + n - 1;
    r.divisor = divisor;
    r.total = dst.len / r.size;
    uint64_t steps_io = (uint64_t)steps;
    Py_BEGIN_ALLOW_THREADS
    ring_shm_run(&r, &slot, &steps_io);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("iK", slot, (unsigned long long)steps_io);
done:
    PyMem_Free(lists);
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&scratch);
    for (int i = 0; i < 4; i++) {
        PyBuffer_Release(&slots[i]);
    }
    for (int i = 0; i < 3; i++) {
        PyBuffer_Release(&flags[i]);
    }
    return result;
}

#ifdef HAVE_CROSS_MEMORY
static PyObject *os_error(int err, const char *what)
{
    PyObject *args = Py_BuildValue("(is)", err, what);
    if (args != NULL) {
        PyErr_SetObject(PyExc_OSError, args);
        Py_DECREF(args);
    }
    return NULL;
}

/* Reads a tuple of (pid, address) pairs, None standing for our own buffer where own_ok. */
static int peer_buffers(PyObject *seq, int own_ok, PeerBuffer **out, int *count,
                        const char *what)
{
    if (!PyTuple_Check(seq)) {
        PyErr_Format(PyExc_ValueError, "peer_reduce: %s must be a tuple", what);
        return 0;
    }
    int n = (int)PyTuple_GET_SIZE(seq);
    *out = PyMem_Calloc((size_t)(n > 0 ? n : 1), sizeof(PeerBuffer));
    if (*out == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    for (int q = 0; q < n; q++) {
        PyObject *item = PyTuple_GET_ITEM(seq, q);
        long pid;
        unsigned long long address;
        if (own_ok && item == Py_None) {
            continue;
        }
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "lK", &pid, &address) || pid < 0
            || (pid == 0 && own_ok)) {
            PyErr_Format(PyExc_ValueError, "peer_reduce: %s[%d] must be %s", what, q,
                         own_ok ? "None or (pid, address) with a positive pid"
                                : "(pid, address) with a pid of 0 (this process) or positive");
            return 0;
        }
        (*out)[q].pid = (pid_t)pid;
        (*out)[q].address = (uint64_t)address;
    }
    *count = n;
    return 1;
}

static PyObject *peer_reduce(PyObject *self, PyObject *args)
{
    Py_buffer dst, own, scratch;
    const char *code;
    int op;
    double divisor;
    PyObject *sources_obj, *targets_obj;
    int stream = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "w*y*w*OOsid|p", &dst, &own, &scratch, &sources_obj,
                          &targets_obj, &code, &op, &divisor, &stream)) {
        return NULL;
    }
    PyObject *result = NULL;
    PeerBuffer *sources = NULL, *targets = NULL;
    int n = 0, n_targets = 0;
    int size = itemsize_of(code);
    char kind = code[0];
    if (size == 0 || !reduce_loop(kind, size, NULL, NULL, NULL, 0, OP_SUM, 1.0)) {
        PyErr_Format(PyExc_ValueError, "peer_reduce: unknown dtype code %s", code);
        goto done;
    }
    if (op < OP_SUM || op > OP_MAX || (divisor != 1.0 && kind != 'f')) {
        PyErr_Format(PyExc_ValueError, "peer_reduce: op %d with divisor %g does not fit dtype "
                     "%s", op, divisor, code);
        goto done;
    }
    if (own.len != dst.len || dst.len % size != 0) {
        PyErr_Format(PyExc_ValueError, "peer_reduce: dst and own must have equal lengths, got "
                     "%zd and %zd bytes", dst.len, own.len);
        goto done;
    }
    Py_ssize_t block = scratch.len / 3 / size * size;
    if (block < size) {
        PyErr_Format(PyExc_ValueError, "peer_reduce: scratch of %zd bytes holds no three "
                     "elements of %d bytes", scratch.len, size);
        goto done;
    }
    if (!peer_buffers(sources_obj, 1, &sources, &n, "sources")
        || !peer_buffers(targets_obj, 0, &targets, &n_targets, "targets")) {
        goto done;
    }
    if (n < 2) {
        PyErr_SetString(PyExc_ValueError, "peer_reduce: sources must hold 2 or more entries, "
                        "None for our own buffer or (pid, address)");
        goto done;
    }
    int failed = -1, err;
    Py_BEGIN_ALLOW_THREADS
    err = peer_reduce_run(kind, size, dst.buf, own.buf, scratch.buf, block, sources, n, targets,
                          n_targets, dst.len, op, divisor, stream, &failed);
    Py_END_ALLOW_THREADS
    if (err != 0) {
        const PeerBuffer *at = failed < n ? &sources[failed] : &targets[failed - n];
        char what[112];
        snprintf(what, sizeof what, "peer_reduce: %s %s %d (pid %ld): %s",
                 failed < n ? "reading" : "writing", failed < n ? "source" : "target",
                 failed < n ? failed : failed - n, (long)at->pid, strerror(err));
        os_error(err, what);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(sources);
    PyMem_Free(targets);
    PyBuffer_Release(&dst);
    PyBuffer_Release(&own);
    PyBuffer_Release(&scratch);
    return result;
}

/* peer_read(dst, pid, address) and peer_write(src, pid, address) */
static PyObject *peer_copy(PyObject *args, int write)
{
    Py_buffer local;
    long pid;
    unsigned long long address;
    if (!PyArg_ParseTuple(args, write ? "y*lK" : "w*lK", &local, &pid, &address)) {
        return NULL;
    }
    const char *name = write ? "peer_write" : "peer_read";
    PyObject *result = NULL;
    if (pid <= 0) {
        PyErr_Format(PyExc_ValueError, "%s: pid must be positive, got %ld", name, pid);
        goto done;
    }
    int err;
    Py_BEGIN_ALLOW_THREADS
    err = transfer(local.buf, (pid_t)pid, (uint64_t)address, (size_t)local.len, write);
    Py_END_ALLOW_THREADS
    if (err != 0) {
        char what[96];
        snprintf(what, sizeof what, "%s: pid %ld: %s", name, pid, strerror(err));
        os_error(err, what);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&local);
    return result;
}

static PyObject *peer_read(PyObject *self, PyObject *args)
{
    (void)self;
    return peer_copy(args, 0);
}

static PyObject *peer_write(PyObject *self, PyObject *args)
{
    (void)self;
    return peer_copy(args, 1);
}

static PyObject *allow_peer_access(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
#ifdef PR_SET_PTRACER
    if (prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0) != 0 && errno != EINVAL) {
        return os_error(errno, "allow_peer_access: prctl(PR_SET_PTRACER)");
    }
#endif
    Py_RETURN_NONE;
}
#endif

static PyObject *set_stream(PyObject *self, PyObject *arg)
{
    (void)self;
    int want = PyObject_IsTrue(arg);
    if (want < 0) {
        return NULL;
    }
    int before = use_stream;
#ifdef HAVE_STREAM_PATH
    use_stream = want;
#endif
    return PyBool_FromLong(before);
}

static PyObject *set_slot_writes(PyObject *self, PyObject *arg)
{
    (void)self;
    long want = PyLong_AsLong(arg);
    if (want == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (want < -1 || want > 1) {
        PyErr_Format(PyExc_ValueError, "set_slot_writes: -1 (choose by timing), 0 (through the "
                     "cache) or 1 (streaming stores), got %ld", want);
        return NULL;
    }
    int before = slot_writes;
    slot_writes = (int)want;
    return PyLong_FromLong(before);
}

static PyObject *slot_costs(PyObject *self, PyObject *args)
{
    int clear = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "|p", &clear)) {
        return NULL;
    }
    PyObject *costs = Py_BuildValue("(dd)", slot_cost[0], slot_cost[1]);
    if (clear) {
        slot_cost[0] = slot_cost[1] = 0.0;
    }
    return costs;
}

static PyObject *set_f16c(PyObject *self, PyObject *arg)
{
    (void)self;
    int want = PyObject_IsTrue(arg);
    if (want < 0) {
        return NULL;
    }
    int before = use_f16c;
#ifdef HAVE_F16C_PATH
    use_f16c = want && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
    return PyBool_FromLong(before);
}

static PyMethodDef methods[] = {
#ifdef HAVE_CROSS_MEMORY
    {"peer_reduce", peer_reduce, METH_VARARGS,
     "peer_reduce(dst, own, scratch, sources, targets, code, op, divisor, stream=False): dst = "
     "op over sources in order (None: own; (pid, address): that process's memory, read with "
     "process_vm_readv), / divisor at the last step, in blocks of a third of scratch; each "
     "block is then written to every (pid, address) of targets (process_vm_writev; pid 0: an "
     "address in this process); stream: dst (out of place) and such targets written with "
     "streaming stores; raises OSError naming the buffer it could not access"},
    {"peer_read", peer_read, METH_VARARGS,
     "peer_read(dst, pid, address): fill dst with the bytes at address in process pid"},
    {"peer_write", peer_write, METH_VARARGS,
     "peer_write(src, pid, address): write the bytes of src at address in process pid"},
    {"allow_peer_access", allow_peer_access, METH_NOARGS,
     "allow_peer_access(): let this user's other processes access ours (Yama's "
     "PR_SET_PTRACER); a no-op without Yama"},
#endif
    {"set_slot_writes", set_slot_writes, METH_O,
     "set_slot_writes(mode): how ring_shm writes its slots: -1 the cheaper way as timed, 0 "
     "through the cache, 1 with streaming stores; returns the previous mode"},
    {"slot_costs", slot_costs, METH_VARARGS,
     "slot_costs(clear=False) -> (through the cache, streaming): ring_shm's moving averages of "
     "seconds per byte of a block written each way (0.0: not measured yet); clear: start afresh"},
    {"ring_shm", ring_shm, METH_VARARGS,
     "ring_shm(src, dst, scratch, (mine0, mine1), (left0, left1), (flag, left_flag, right_flag), "
     "code, op, divisor, first, rs, ag, per_chunk, slot, steps, stream) -> (slot, steps): one "
     "all-reduce over the shared slots, the loop of MPICommunicator._ring_shm; the GIL is "
     "released"},
    {"set_f16c", set_f16c, METH_O,
     "set_f16c(flag): use the F16C float16 loops if the CPU has them (False: the portable "
     "loop, for tests and benchmarks); returns the previous setting"},
    {"set_stream", set_stream, METH_O,
     "set_stream(flag): write copy(stream=True) destinations with non-temporal stores where the "
     "CPU has them (False: ordinary stores, for tests and benchmarks); returns the previous "
     "setting"},
    {"reduce3", reduce3, METH_VARARGS,
     "reduce3(dst, a, b, code, op, divisor): dst = op(a, b) / divisor (op 0 sum, 1 min, 2 max)"},
    {"copy", copy_bytes, METH_VARARGS,
     "copy(dst, src, stream=False): dst = src (bytes); stream: non-temporal stores to dst"},
    {"scale", scale, METH_VARARGS, "scale(dst, code, divisor): dst /= divisor in place"},
    {"step", step, METH_VARARGS,
     "step(mine, left, right, value): store value in the 8-byte flag mine (release), then wait "
     "until the flags left and right hold at least value (acquire); the GIL is released"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ckernels", "C reduction kernels for ringtrain's ring all-reduce.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ckernels(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
#ifdef HAVE_F16C_PATH
    __builtin_cpu_init();
    use_f16c = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
#ifdef HAVE_STREAM_PATH
    use_stream = 1;                    /* SSE2 is part of x86-64: every such CPU has movntdq */
#endif
    PyObject *codes = Py_BuildValue("(ssssssssssss)", "f2", "f4", "f8", "i1", "i2", "i4", "i8",
                                    "u1", "u2", "u4", "u8", "b1");
    if (codes == NULL || PyModule_AddObject(m, "DTYPES", codes) < 0
        || PyModule_AddIntConstant(m, "F16C", use_f16c) < 0
        || PyModule_AddIntConstant(m, "STREAM", use_stream) < 0
#ifdef HAVE_CROSS_MEMORY
        || PyModule_AddIntConstant(m, "CROSS_MEMORY", 1) < 0
#else
        || PyModule_AddIntConstant(m, "CROSS_MEMORY", 0) < 0
#endif
        ) {
        Py_XDECREF(codes);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
