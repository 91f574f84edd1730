/*
 * Native baseline for vsva's `walk.nested` benchmark: the same nested (stage 1 x stage 2) VMSAv8-64
 * table walk over the same memory image, written in plain C so the TypeScript model can be compared
 * with what the hardware-style algorithm costs natively.
 *
 * bench/run.ts exports the image (see the format below), compiles this file with `cc -O2` and runs
 *   walk IMAGE RUNS PASSES
 * It loads the backed 4 KiB pages into an open-addressing hash map keyed by page frame number (a page
 * that was never written reads as zeros, as in PhysMem), verifies one pass (every walk OK, exactly
 * 24 descriptor reads each), then times RUNS runs of PASSES passes over the query list and prints
 * `key value` lines: the best walks/s and a checksum of the resulting PAs that the TypeScript side
 * compares with its own.
 *
 * The walk mirrors src/hw/vmsa/walker.ts for what the image uses: per level the index, the
 * descriptor address (an IPA translated by stage 2 first for stage-1 tables), the descriptor read,
 * valid / table / page / block checks, output-address-size checks, hierarchical stage-1 attributes,
 * the access flag and the permission check (unprivileged read at stage 1, read at stage 2).
 *
 * Image format (all little-endian):
 *   0   char[8] "VSVAWLK1"
 *   8   u32 page count P          12  u32 query count Q
 *   16  u32 s1 need (PERM bits)   20  u32 s2 need (PERM bits)
 *   24  stage-1 regime (32 bytes) 56  stage-2 regime (32 bytes), each:
 *         u32 granule, startLevel, startBits, inputBits, oaBits, flags (bit0 AFFD, bit1 HAD,
 *         bit2 twoPrivilege), ttbLo, ttbHi
 *   88  P x { u64 pa; u8 bytes[4096] }
 *   ... Q x u64 input address
 */

#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { W_OK = 0, W_TRANSLATION = 1, W_ADDR_SIZE = 2, W_ACCESS = 3, W_PERMISSION = 4 };

/* PERM bits, as in src/arch/vmsa.ts. */
enum {
  S1_PR = 1 << 0, S1_PW = 1 << 1, S1_PX = 1 << 2, S1_UR = 1 << 3, S1_UW = 1 << 4, S1_UX = 1 << 5,
  S2_R = 1 << 8, S2_W = 1 << 9, S2_X = 1 << 10
};

typedef struct {
  unsigned granule, start_level, start_bits, input_bits, oa_bits;
  int affd, had, two_privilege;
  uint64_t ttb;
  uint64_t oa_limit;
} regime_t;

/* ------------------------------------------------------------------ memory: pfn -> page */

typedef struct {
  uint64_t key; /* pfn + 1; 0 = empty */
  const uint8_t *page;
} slot_t;

static slot_t *htab;
static unsigned hshift;
static uint64_t hmask;
static const uint8_t zero_page[4096];
static uint64_t desc_reads;

static inline uint64_t hslot(uint64_t pfn) { return (pfn * 0x9E3779B97F4A7C15ull) >> hshift; }

static void map_put(uint64_t pfn, const uint8_t *page) {
  uint64_t s = hslot(pfn);
  while (htab[s].key != 0 && htab[s].key != pfn + 1) s = (s + 1) & hmask;
  htab[s].key = pfn + 1;
  htab[s].page = page;
}

static inline const uint8_t *page_of(uint64_t pfn) {
  for (uint64_t s = hslot(pfn);; s = (s + 1) & hmask) {
    if (htab[s].key == pfn + 1) return htab[s].page;
    if (htab[s].key == 0) return zero_page;
  }
}

static inline uint64_t read_desc(uint64_t pa) {
  uint64_t d;
  desc_reads++;
  memcpy(&d, page_of(pa >> 12) + (pa & 0xff8), 8);
  return d;
}

/* ------------------------------------------------------------------ the walk */

static inline int block_legal(unsigned g, unsigned level) {
  if (g == 12) return level == 1 || level == 2;
  if (g == 14) return level == 2;
  return level == 2; /* 64 KiB level-1 blocks need 52-bit OA, not in these images */
}

static inline unsigned s1_permissions(unsigned ap, int pxn, int uxn, int two_privilege) {
  int ro = (ap & 2) != 0;
  if (!two_privilege) {
    unsigned p = S1_PR | S1_UR;
    if (!ro) p |= S1_PW | S1_UW;
    if (!uxn) p |= S1_PX | S1_UX;
    return p;
  }
  int el0 = (ap & 1) != 0;
  unsigned p = S1_PR;
  if (!ro) p |= S1_PW;
  if (el0) p |= S1_UR;
  if (el0 && !ro) p |= S1_UW;
  if (!pxn && !(el0 && !ro)) p |= S1_PX;
  if (!uxn) p |= S1_UX;
  return p;
}

/* Index of `in` at `level` and the descriptor address in the table at `table`. */
static inline uint64_t desc_addr(uint64_t table, uint64_t in, unsigned shift, unsigned bits) {
  const uint64_t idx = (in >> shift) & ((1ull << bits) - 1);
  return (table & ~((1ull << (bits + 3)) - 1)) | (idx << 3);
}

/* Stage-2 walk of an IPA (the IPA range check, then up to 4 levels). */
static inline int walk_s2(const regime_t *r, uint64_t in, unsigned need, uint64_t *out) {
  const unsigned g = r->granule, stride = g - 3;
  if ((in >> r->input_bits) != 0) return W_TRANSLATION;
  unsigned level = r->start_level, bits = r->start_bits;
  uint64_t table = r->ttb;
  for (;;) {
    const unsigned shift = g + stride * (3 - level);
    const uint64_t d = read_desc(desc_addr(table, in, shift, bits));
    if ((d & 1) == 0) return W_TRANSLATION;
    if (level < 3 && (d & 2) != 0) {
      table = d & 0x0000fffffffff000ull & ~((1ull << g) - 1);
      if (table >= r->oa_limit) return W_ADDR_SIZE;
      level++;
      bits = stride;
      continue;
    }
    if (level == 3 ? (d & 2) == 0 : !block_legal(g, level)) return W_TRANSLATION;
    const uint64_t low = (1ull << shift) - 1;
    const uint64_t oa = ((d & 0x0000ffffffffffffull) & ~low) | (in & low);
    const unsigned s2ap = (unsigned)(d >> 6) & 3;
    const unsigned perms = ((s2ap & 1) ? S2_R : 0) | ((s2ap & 2) ? S2_W : 0) | ((d & (1ull << 54)) ? 0 : S2_X);
    if (oa >= r->oa_limit) return W_ADDR_SIZE;
    if ((d & (1ull << 10)) == 0 && !r->affd) return W_ACCESS;
    if ((perms & need) != need) return W_PERMISSION;
    *out = oa;
    return W_OK;
  }
}

/* Stage-1 walk of a VA whose table addresses are IPAs translated by `s2` (a read, CLASS TT). */
static inline int walk_s1(const regime_t *r, uint64_t in, unsigned need, const regime_t *s2, uint64_t *out) {
  const unsigned g = r->granule, stride = g - 3;
  unsigned level = r->start_level, bits = r->start_bits;
  uint64_t table = r->ttb;
  unsigned ap_table = 0;
  int xn_table = 0, pxn_table = 0;
  for (;;) {
    const unsigned shift = g + stride * (3 - level);
    uint64_t daddr;
    const int f = walk_s2(s2, desc_addr(table, in, shift, bits), S2_R, &daddr);
    if (f != W_OK) return f | 0x100;
    const uint64_t d = read_desc(daddr);
    if ((d & 1) == 0) return W_TRANSLATION;
    if (level < 3 && (d & 2) != 0) {
      table = d & 0x0000fffffffff000ull & ~((1ull << g) - 1);
      if (table >= r->oa_limit) return W_ADDR_SIZE;
      if (!r->had) {
        ap_table |= (unsigned)(d >> 61) & 3;
        if (d & (1ull << 60)) xn_table = 1;
        if (d & (1ull << 59)) pxn_table = 1;
      }
      level++;
      bits = stride;
      continue;
    }
    if (level == 3 ? (d & 2) == 0 : !block_legal(g, level)) return W_TRANSLATION;
    const uint64_t low = (1ull << shift) - 1;
    const uint64_t oa = ((d & 0x0000ffffffffffffull) & ~low) | (in & low);
    unsigned ap = (unsigned)(d >> 6) & 3;
    if (ap_table & 1) ap &= ~1u;
    if (ap_table & 2) ap |= 2;
    const unsigned perms = s1_permissions(ap, (d & (1ull << 53)) != 0 || pxn_table,
                                          (d & (1ull << 54)) != 0 || xn_table, r->two_privilege);
    if (oa >= r->oa_limit) return W_ADDR_SIZE;
    if ((d & (1ull << 10)) == 0 && !r->affd) return W_ACCESS;
    if ((perms & need) != need) return W_PERMISSION;
    *out = oa;
    return W_OK;
  }
}

/* Nested translation of a VA (stage 1 through TTB0 with its input range check, then stage 2). */
static inline int translate(const regime_t *s1, const regime_t *s2, uint64_t va, unsigned s1need, unsigned s2need,
                            uint64_t *pa) {
  if ((va >> s1->input_bits) != 0) return W_TRANSLATION;
  uint64_t ipa;
  int f = walk_s1(s1, va, s1need, s2, &ipa);
  if (f != W_OK) return f;
  f = walk_s2(s2, ipa, s2need, pa);
  return f == W_OK ? W_OK : (f | 0x100);
}

/* ------------------------------------------------------------------ loading */

static uint32_t u32at(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t u64at(const uint8_t *p) { return (uint64_t)u32at(p) | ((uint64_t)u32at(p + 4) << 32); }

static void read_regime(const uint8_t *p, regime_t *r) {
  r->granule = u32at(p);
  r->start_level = u32at(p + 4);
  r->start_bits = u32at(p + 8);
  r->input_bits = u32at(p + 12);
  r->oa_bits = u32at(p + 16);
  uint32_t flags = u32at(p + 20);
  r->affd = flags & 1;
  r->had = (flags >> 1) & 1;
  r->two_privilege = (flags >> 2) & 1;
  r->ttb = (uint64_t)u32at(p + 24) | ((uint64_t)u32at(p + 28) << 32);
  r->oa_limit = 1ull << r->oa_bits;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *msg) {
  fprintf(stderr, "walk: %s\n", msg);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 4) die("usage: walk IMAGE RUNS PASSES");
  const int runs = atoi(argv[2]);
  const int passes = atoi(argv[3]);
  if (runs < 1 || passes < 1) die("RUNS and PASSES must be >= 1");
  FILE *fp = fopen(argv[1], "rb");
  if (fp == NULL) die("cannot open the image");
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *img = malloc((size_t)size);
  if (img == NULL || fread(img, 1, (size_t)size, fp) != (size_t)size) die("cannot read the image");
  fclose(fp);
  if (size < 88 || memcmp(img, "VSVAWLK1", 8) != 0) die("bad magic");
  const uint32_t npages = u32at(img + 8), nq = u32at(img + 12);
  const unsigned s1need = u32at(img + 16), s2need = u32at(img + 20);
  regime_t s1, s2;
  read_regime(img + 24, &s1);
  read_regime(img + 56, &s2);
  if ((uint64_t)size != 88 + (uint64_t)npages * (8 + 4096) + (uint64_t)nq * 8) die("bad image size");

  unsigned cap_log2 = 4;
  while ((1ull << cap_log2) < 2ull * npages) cap_log2++;
  hshift = 64 - cap_log2;
  hmask = (1ull << cap_log2) - 1;
  htab = calloc(1ull << cap_log2, sizeof *htab);
  if (htab == NULL) die("out of memory");
  const uint8_t *p = img + 88;
  for (uint32_t i = 0; i < npages; i++, p += 8 + 4096) map_put(u64at(p) >> 12, p + 8);
  uint64_t *q = malloc((size_t)nq * sizeof *q);
  if (q == NULL) die("out of memory");
  for (uint32_t i = 0; i < nq; i++) q[i] = u64at(p + 8ull * i);

  /* Verification pass: every walk succeeds with 24 descriptor reads; the checksum of the PAs. */
  uint32_t checksum = 0;
  uint64_t faults = 0;
  const uint64_t reads0 = desc_reads;
  for (uint32_t i = 0; i < nq; i++) {
    uint64_t pa = 0;
    if (translate(&s1, &s2, q[i], s1need, s2need, &pa) != W_OK) faults++;
    checksum = checksum * 31u + ((uint32_t)pa ^ (uint32_t)(pa >> 32));
  }
  const double reads_per_walk = (double)(desc_reads - reads0) / (double)nq;

  double best = 1e300;
  uint32_t sink = 0;
  for (int r = 0; r < runs; r++) {
    const double t0 = now_s();
    for (int k = 0; k < passes; k++) {
      for (uint32_t i = 0; i < nq; i++) {
        uint64_t pa = 0;
        int f = translate(&s1, &s2, q[i], s1need, s2need, &pa);
        sink = sink * 31u + ((uint32_t)pa ^ (uint32_t)(pa >> 32)) + (uint32_t)f;
      }
    }
    const double dt = now_s() - t0;
    if (dt < best) best = dt;
  }
  const double walks = (double)nq * passes;
  printf("pages %u\n", npages);
  printf("queries %u\n", nq);
  printf("faults %llu\n", (unsigned long long)faults);
  printf("desc_reads_per_walk %.3f\n", reads_per_walk);
  printf("checksum %u\n", checksum);
  printf("walks_per_s %.1f\n", walks / best);
  printf("best_ns_per_walk %.3f\n", best * 1e9 / walks);
  printf("sink %u\n", sink);
  return faults == 0 ? 0 : 2;
}
