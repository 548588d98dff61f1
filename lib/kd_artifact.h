/* kd_artifact: the one container every kdrec tool reads and writes.
 *
 * On disk (all integers little-endian):
 *
 *   header, 48 bytes
 *     0  magic      8 bytes  "\x89KDR\r\n\x1a\n"  (PNG's trick: catches text-mode mangling)
 *     8  version    u32      KD_FORMAT_VERSION; a reader refuses a newer one
 *    12  kind       u32      dataset, model, ...
 *    16  nsections  u32
 *    20  zlevel     u32      zlib level used (0-9); not part of the content ID
 *    24  content_id u64      XXH3-64 of the canonical content (below)
 *    32  reserved   u64      0
 *    40  hdr_sum    u64      XXH3-64 of bytes 0..40 and of the section table
 *   section table, 96 bytes per section
 *     0  name[32]   NUL-padded UTF-8, 1..31 bytes
 *    32  type u32, 36 flags u32 (bit 0: bytes shuffled before deflate; bit 1: volatile)
 *    40  rows u64, 48 cols u64, 56 nnz u64 (CSR only)
 *    64  raw_bytes u64, 72 comp_bytes u64, 80 raw_sum u64 (XXH3-64 of raw bytes), 88 reserved u64
 *   payloads: each section's zlib stream, in table order, and nothing after the last one.
 *
 * How the writer makes a stream (any zlib stream reads the same; this is about the bytes):
 * the section's bytes, byte-shuffled for f32/f64, are deflated in 1 MiB chunks, each
 * primed with the 32 KiB before it and ended on a byte boundary, between one zlib header
 * and the Adler-32 of the whole (pigz's construction), so chunks compress in parallel and
 * the bytes are the same for any number of threads; float sections use deflate's
 * run-length strategy (kd_artifact.c says why).  Files from the older one-call writer
 * read unchanged: the format, and so its version, is the same.
 *
 * Content ID: XXH3-64 over the kind and, per non-volatile section, name, type, shape
 * and raw_sum.  Volatile sections hold measurements (timings) that differ run to run.
 * Provenance is a text section, so it is part of the content; zlevel and flags are not,
 * so the same content at another compression level has the same ID.
 *
 * Section types and their raw layout:
 *   F32, F64   dense row-major matrix rows x cols (a vector is cols = 1)
 *   I32, U32, U64  vector of rows elements (cols = 1)
 *   CSR        u64 indptr[rows+1], then u32 indices[nnz] (column ids < cols)
 *   TEXT       rows bytes of UTF-8 without NUL (cols = 1)
 *   U8         dense row-major bytes rows x cols (quantised codes; since version 2)
 *
 * Versions.  1: the types F32..TEXT.  2: adds U8.  A writer stamps the lowest version
 * its sections need, so a file without U8 is still a version-1 file, byte for byte, that
 * a version-1 reader reads; one with U8 is refused by that reader with its "newer than
 * this kdrec reads" message instead of a puzzling type error.  A version-1 file that
 * claims a U8 section is corrupt.
 *
 * A reader checks, before trusting any byte: magic, version, kind, header checksum,
 * every size against overflow and against the bytes present, that the payload sizes add
 * up to the file, each section's decompressed size and checksum, and the structure of
 * CSR sections.  It never allocates more than the file can justify (deflate expands at
 * most ~1032x).
 */
#ifndef KD_ARTIFACT_H
#define KD_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "kd_err.h"
#include "kd_io.h"

#define KD_FORMAT_VERSION 2u  /* the newest version this reads and writes */
#define KD_HEADER_BYTES   48u
#define KD_ENTRY_BYTES    96u
#define KD_NAME_MAX       31u
#define KD_MAX_SECTIONS   4096u

enum kd_kind { KD_KIND_DATASET = 1, KD_KIND_MODEL = 2, KD_KIND_RESULT = 3, KD_KIND_RANKING = 4 };
enum kd_type { KD_F32 = 1, KD_F64, KD_I32, KD_U32, KD_U64, KD_CSR, KD_TEXT, KD_U8 };
/* flags: SHUFFLE is an encoding; VOLATILE marks a measurement (a timing) that is kept in
 * the file but left out of the content ID, so measured figures never change identity */
enum { KD_FLAG_SHUFFLE = 1u, KD_FLAG_VOLATILE = 2u };

typedef struct kd_section {
    char     name[KD_NAME_MAX + 1];
    uint32_t type;
    uint32_t flags;       /* KD_FLAG_SHUFFLE (set by encode), KD_FLAG_VOLATILE (by the writer) */
    uint64_t rows, cols;  /* shape; see the table above */
    uint64_t nnz;         /* CSR: number of stored entries */
    void    *data;        /* raw bytes (8-byte aligned) */
    uint64_t bytes;       /* raw size */
    uint64_t sum;         /* XXH3-64 of the raw bytes */
    uint64_t comp_bytes;  /* compressed size (after read or encode) */
    int      owned;       /* data is freed with the artifact (else it is the caller's: kd_art_add_ref) */
} kd_section;

typedef struct kd_art {
    uint32_t    kind;
    uint32_t    zlevel;      /* as read from a file */
    uint32_t    version;     /* format version as read, or as last encoded (0: neither) */
    uint64_t    content_id;  /* valid after read or encode */
    uint32_t    n, cap;
    kd_section *sec;         /* (n) */
    char        src[256];    /* display name of the file it came from, for messages */
} kd_art;

const char *kd_kind_name(uint32_t kind);   /* "dataset", ...; NULL if unknown */
int         kd_kind_parse(const char *s);  /* the kind for a name, or -1 */
const char *kd_type_name(uint32_t type);   /* "f32", ...; NULL if unknown */
size_t      kd_type_size(uint32_t type);   /* element size; 1 for TEXT and U8, 0 for CSR/unknown */
/* The lowest format version that can hold the artifact's sections (1 or 2). */
uint32_t    kd_art_min_version(const kd_art *a);

/* Builds an empty artifact of a kind.  NULL when out of memory. */
kd_art *kd_art_new(uint32_t kind);
void    kd_art_free(kd_art *a);

/* Adds a section.  The data is copied unless `take` is set, in which case the artifact
 * owns `data` (malloc'd) from then on, even when the call fails.  Fails on a duplicate or
 * bad name, a shape inconsistent with `bytes`, or out of memory. */
int kd_art_add(kd_art *a, const char *name, uint32_t type, uint64_t rows, uint64_t cols,
               uint64_t nnz, void *data, uint64_t bytes, int take, kd_err *e);
/* Adds a section that refers to the caller's bytes instead of copying them (a model's
 * rows, tens of MB): they must stay valid and unchanged as long as the section is read
 * (encoded, saved, found); kd_art_free leaves them alone. */
int kd_art_add_ref(kd_art *a, const char *name, uint32_t type, uint64_t rows, uint64_t cols,
                   const void *data, uint64_t bytes, kd_err *e);
int kd_art_add_f32(kd_art *a, const char *name, uint64_t rows, uint64_t cols, const float *x, kd_err *e);
int kd_art_add_f64(kd_art *a, const char *name, uint64_t rows, uint64_t cols, const double *x, kd_err *e);
int kd_art_add_u32(kd_art *a, const char *name, uint64_t n, const uint32_t *x, kd_err *e);
int kd_art_add_u64(kd_art *a, const char *name, uint64_t n, const uint64_t *x, kd_err *e);
int kd_art_add_text(kd_art *a, const char *name, const char *text, size_t len, kd_err *e);
/* A TEXT section from a buffer: fails ("section 'provenance': out of memory") when the
 * buffer's sticky error is set, so a provenance that lost a line is never written. */
int kd_art_add_buf(kd_art *a, const char *name, const kd_buf *b, kd_err *e);
int kd_art_add_csr(kd_art *a, const char *name, uint64_t rows, uint64_t cols,
                   const uint64_t *indptr, const uint32_t *indices, kd_err *e);

/* Marks a section volatile (see flags); 0, or -1 if there is no such section. */
int kd_art_set_volatile(kd_art *a, const char *name);

/* Encodes to bytes (appended to out), setting a->content_id. */
int kd_art_encode(kd_art *a, int zlevel, kd_buf *out, kd_err *e);
/* The same with the float byte-shuffle on or off (for measuring what it buys). */
int kd_art_encode_ex(kd_art *a, int zlevel, int shuffle, kd_buf *out, kd_err *e);
/* The same on `threads` threads (0: the CPUs, at most 8).  The bytes never depend on it. */
int kd_art_encode_par(kd_art *a, int zlevel, int shuffle, int threads, kd_buf *out, kd_err *e);
/* Encodes and writes atomically to path ("-" = stdout, never a terminal) through
 * kd_write_file. */
int kd_art_save(kd_art *a, const char *path, int zlevel, kd_err *e);

/* Decodes a whole file image; `name` is used in messages.  Verifies everything. */
int kd_art_parse(const uint8_t *p, size_t n, const char *name, kd_art **out, kd_err *e);
/* Reads path ("-" = stdin) and decodes it.  With want_kind != 0 a file of another kind
 * is refused ("x.kd: is a dataset, not a model"). */
int kd_art_load(const char *path, uint32_t want_kind, kd_art **out, kd_err *e);
/* Reads only the header and table of a file (and checks their checksum): kind and
 * content ID without decompressing anything.  For cache keys and listings. */
int kd_art_peek(const char *path, uint32_t *kind, uint64_t *content_id, kd_err *e);

/* Content ID of the current sections (computes raw checksums as needed). */
uint64_t kd_art_content_id(kd_art *a);

/* Finds a section by name; NULL if absent. */
const kd_section *kd_art_find(const kd_art *a, const char *name);
/* Finds a section of a given type, or fails with "<src>: no <type> section '<name>'". */
const kd_section *kd_art_need(const kd_art *a, const char *name, uint32_t type, kd_err *e);

/* Provenance: the "provenance" TEXT section of key=value lines.  Copies the value of
 * key into buf (NUL-terminated) and returns 0, or -1 if absent. */
int kd_art_prov_get(const kd_art *a, const char *key, char *buf, size_t size);

/* Accessors for a CSR section's two arrays. */
static inline const uint64_t *kd_csr_indptr(const kd_section *s) { return (const uint64_t *)s->data; }
static inline const uint32_t *kd_csr_indices(const kd_section *s)
{
    return (const uint32_t *)((const uint8_t *)s->data + 8 * (s->rows + 1));
}

/* Hex form of a content ID: 16 lowercase digits + NUL. */
void kd_id_hex(uint64_t id, char out[17]);

/* Byte (un)shuffle as in Blosc: element byte k of every element goes to plane k. */
void kd_shuffle(uint8_t *dst, const uint8_t *src, size_t n, size_t elem);
void kd_unshuffle(uint8_t *dst, const uint8_t *src, size_t n, size_t elem);

#endif
