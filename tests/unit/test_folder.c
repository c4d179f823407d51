/*
 * test_folder.c: image-folder datasets (src/data/folder.c, decode.c). Tiny
 * JPEGs and PNGs are written here with libjpeg and libpng themselves: class
 * order and file order as torchvision's ImageFolder (byte order, os.walk
 * order, hidden and other files ignored, empty classes kept), the train/val
 * layout, PNG decoding exact for every colour type, JPEG decoding close to
 * the source and, when /usr/bin/python3 has PIL, equal to PIL byte for byte
 * (CMYK and YCCK through PIL's convert("RGB")); truncated and corrupt files
 * and images over the size limits give OT_ERR_PARSE naming the file; batches
 * of mixed sizes equal per-image prepares; ot_data_get from several threads;
 * the stratified validation split.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>

#include "data/data.h"
#include "test.h"

#define PIL_PYTHON "/usr/bin/python3"

/* ------------------------------------------------------------- helpers */

/* mkdir -p for a path under the scratch folder. */
static void mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

/* <tmp>/<name> into buf (created). */
static const char *tmp_root(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", ot_test_tmpdir(), name);
    mkdirs(buf);
    return buf;
}

static void join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return;
    char *slash = strrchr(buf, '/');
    *slash = '\0';
    mkdirs(buf);
    *slash = '/';
}

static bool write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)size + 1);
    *n = fread(b, 1, (size_t)size, f);
    fclose(f);
    return b;
}

/* Writes a JPEG from interleaved pixels of `comps` components in `in_space`;
   `jpeg_space` JCS_UNKNOWN keeps libjpeg's default. full_chroma: 1x1
   sampling everywhere (else libjpeg's 2x2 luma default). */
static bool write_jpeg(const char *path, int w, int h, int comps, J_COLOR_SPACE in_space,
                       J_COLOR_SPACE jpeg_space, uint8_t *px, int quality, bool progressive,
                       bool full_chroma)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = in_space;
    jpeg_set_defaults(&ci);
    if (jpeg_space != JCS_UNKNOWN)
        jpeg_set_colorspace(&ci, jpeg_space);
    jpeg_set_quality(&ci, quality, TRUE);
    if (full_chroma)
        for (int c = 0; c < ci.num_components; c++)
            ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
    if (progressive)
        jpeg_simple_progression(&ci);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = px + (size_t)ci.next_scanline * w * comps;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f) == 0;
}

/* Writes a PNG; rows are packed as PNG stores them (16-bit big-endian). */
static bool write_png(const char *path, int w, int h, int color, int depth, bool interlace,
                      uint8_t *data, const png_color *pal, int n_pal, const uint8_t *trans,
                      int n_trans)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return false;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, n_pal);
    if (trans)
        png_set_tRNS(png, info, trans, n_trans, NULL);
    png_write_info(png, info);
    int channels = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_PALETTE ? 1
                   : color == PNG_COLOR_TYPE_GRAY_ALPHA                            ? 2
                   : color == PNG_COLOR_TYPE_RGB                                   ? 3
                                                                                   : 4;
    size_t rowbytes = ((size_t)w * channels * depth + 7) / 8;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++)
        rows[y] = data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f) == 0;
}

/* A smooth test pattern, so that JPEG at quality 100 stays close. */
static uint8_t smooth(int x, int y, int c, int w, int h)
{
    return (uint8_t)(20 + (x * 180) / (w > 1 ? w - 1 : 1) / 2 + (y * 150) / (h > 1 ? h - 1 : 1) / 2 +
                     c * 15);
}

/* Interleaved pattern pixels (for the writers) and their planar copy. */
static uint8_t *pattern(int w, int h, int comps, bool planar)
{
    uint8_t *p = malloc((size_t)w * h * comps);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++) {
                size_t at = planar ? ((size_t)c * h + y) * w + x : ((size_t)y * w + x) * comps + c;
                p[at] = smooth(x, y, c, w, h);
            }
    return p;
}

/* Gray PNG of w x h with value v everywhere but one (x + y) ramp. */
static bool tiny_png(const char *path, int w, int h, uint8_t v)
{
    uint8_t *px = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++)
        px[i] = (uint8_t)(v + i);
    bool ok = write_png(path, w, h, PNG_COLOR_TYPE_GRAY, 8, false, px, NULL, 0, NULL, 0);
    free(px);
    return ok;
}

static bool tiny_jpeg(const char *path, int w, int h)
{
    uint8_t *px = pattern(w, h, 3, false);
    bool ok = write_jpeg(path, w, h, 3, JCS_RGB, JCS_UNKNOWN, px, 90, false, false);
    free(px);
    return ok;
}

/* Log capture. */
typedef struct {
    char text[8192];
} log_buf;

static void capture(ot_log_level level, const char *msg, void *user)
{
    log_buf *b = user;
    size_t n = strlen(b->text);
    snprintf(b->text + n, sizeof b->text - n, "%d %s\n", (int)level, msg);
}

static void log_restore(void) { ot_log_set(NULL, NULL, OT_LOG_WARN); }

/* True when open fails with `code` and the message mentions the needles. */
static bool open_fails(const char *path, ot_data_split split, ot_status code, const char *needle,
                       const char *needle2)
{
    ot_err err;
    ot_dataset *ds = NULL;
    ot_err_init(&err);
    ot_status st = ot_data_open(path, split, &ds, &err);
    ot_data_free(ds);
    bool ok = st == code && strstr(err.msg, needle) && (!needle2 || strstr(err.msg, needle2));
    if (!ok)
        printf("  open %s: status %d (want %d), message: %s\n", path, (int)st, (int)code,
               err.msg);
    return ok;
}

/* Decodes image i of ds into a fresh malloc'd buffer (planar); NULL on error. */
static uint8_t *decode_alloc(const ot_dataset *ds, int64_t i, ot_image *img, ot_err *err)
{
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (ot_data_decode(ds, i, img, buf, cap, err) != OT_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------- layout */

TEST(folder_layout_classes_and_order)
{
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_layout");
    /* Expected order, each image with its own width 1..9 to tell them apart:
       classes by byte order ("Zebra" < "ant" < "cat" < "dog"), files by
       (folder, name) as sorted(os.walk): "dog" < "dog/sub" < "dog/sub b" <
       "dog/sub/deeper" (' ' sorts before '/'). */
    static const char *const files[] = {
        "Zebra/z1.png", "cat/B.jpg",     "cat/a.PNG",     "cat/b.jpg",           "cat/c.JpEg",
        "dog/y.jpeg",   "dog/sub/x.png", "dog/sub b/v.png", "dog/sub/deeper/w.png",
    };
    static const int labels[] = {0, 2, 2, 2, 2, 3, 3, 3, 3};
    /* Written in another order than the expected one. */
    for (int k = 8; k >= 0; k--) {
        join(p, sizeof p, root, files[k]);
        const char *ext = strrchr(files[k], '.') + 1;
        bool ok = (ext[0] == 'p' || ext[0] == 'P') ? tiny_png(p, k + 1, 3, (uint8_t)(10 * k))
                                                   : tiny_jpeg(p, k + 1, 3);
        CHECK(ok);
    }
    snprintf(p, sizeof p, "%s/ant", root);
    mkdirs(p);
    join(p, sizeof p, root, "cat/.hidden.jpg");
    CHECK(tiny_png(p, 20, 2, 0));
    join(p, sizeof p, root, "cat/notes.txt");
    CHECK(write_file(p, "hello", 5));
    join(p, sizeof p, root, "cat/photo.bmp");
    CHECK(write_file(p, "BM", 2));
    join(p, sizeof p, root, ".git/objects/a.png");
    CHECK(tiny_png(p, 21, 2, 0));
    join(p, sizeof p, root, "readme.png"); /* not in a class folder */
    CHECK(tiny_png(p, 22, 2, 0));

    log_buf logs = {{0}};
    ot_log_set(capture, &logs, OT_LOG_INFO);
    ot_err err;
    ot_dataset *ds = NULL;
    ot_status st = ot_data_open(root, OT_DATA_TRAIN, &ds, &err);
    log_restore();
    CHECK_OK(st, &err);
    int h, w, c;
    ot_data_shape(ds, &h, &w, &c);
    bool shape_ok = h == 0 && w == 0 && c == 3;
    bool meta_ok = strcmp(ot_data_format(ds), "imagefolder") == 0 && ot_data_count(ds) == 9 &&
                   ot_data_n_classes(ds) == 4 && !strcmp(ot_data_class_name(ds, 0), "Zebra") &&
                   !strcmp(ot_data_class_name(ds, 1), "ant") &&
                   !strcmp(ot_data_class_name(ds, 2), "cat") &&
                   !strcmp(ot_data_class_name(ds, 3), "dog") && !ot_data_class_name(ds, 4);
    int order_fails = 0;
    for (int64_t i = 0; i < ot_data_count(ds) && i < 9; i++) {
        ot_image img;
        int label = -1, label2 = -1;
        uint8_t *buf = decode_alloc(ds, i, &img, &err);
        bool ok = buf && img.width == i + 1 && img.height == 3 &&
                  ot_data_get(ds, i, NULL, &label, &err) == OT_OK && label == labels[i] &&
                  ot_data_get(ds, i, &img, &label2, &err) == OT_OK && label2 == labels[i] &&
                  img.width == i + 1;
        if (!ok) {
            printf("  image %lld: width %d label %d (want %d, %d): %s\n", (long long)i,
                   img.width, label, (int)i + 1, labels[i], err.msg);
            order_fails++;
        }
        free(buf);
    }
    bool has = ot_data_has_split(root, OT_DATA_TRAIN) && !ot_data_has_split(root, OT_DATA_TEST);
    ot_data_free(ds);
    CHECK(shape_ok);
    CHECK(meta_ok);
    CHECK_EQ_INT(order_fails, 0);
    CHECK(has);
    /* The empty class is kept, with a warning naming it; ignored files counted
       (notes.txt, photo.bmp; hidden ones and readme.png outside classes not). */
    CHECK(strstr(logs.text, "ant") && strstr(logs.text, "holds no images"));
    CHECK(strstr(logs.text, "ignored 2 files"));
    CHECK(open_fails(root, OT_DATA_TEST, OT_ERR_IO, "no test split", NULL));
}

TEST(folder_train_val_layout)
{
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_split");
    static const char *const train[] = {"train/a/1.png", "train/b/1.png", "train/b/2.png",
                                        "train/c/1.png"};
    static const char *const val[] = {"val/a/1.png", "val/c/1.png", "val/c/2.png"};
    for (int k = 0; k < 4; k++) {
        join(p, sizeof p, root, train[k]);
        CHECK(tiny_png(p, 2, 2, 0));
    }
    for (int k = 0; k < 3; k++) {
        join(p, sizeof p, root, val[k]);
        CHECK(tiny_png(p, 2, 2, 0));
    }
    join(p, sizeof p, root, "test/q/1.png"); /* val wins over test */
    CHECK(tiny_png(p, 2, 2, 0));
    CHECK(ot_data_has_split(root, OT_DATA_TRAIN) && ot_data_has_split(root, OT_DATA_TEST));
    ot_err err;
    ot_dataset *tr = NULL, *te = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &tr, &err), &err);
    ot_status st = ot_data_open(root, OT_DATA_TEST, &te, &err);
    int64_t n_tr = ot_data_count(tr);
    int nc_tr = ot_data_n_classes(tr);
    ot_data_free(tr);
    CHECK_OK(st, &err);
    int l[3] = {-1, -1, -1};
    for (int i = 0; i < 3 && i < ot_data_count(te); i++)
        ot_data_get(te, i, NULL, &l[i], &err);
    bool te_ok = ot_data_count(te) == 3 && ot_data_n_classes(te) == 3 &&
                 !strcmp(ot_data_class_name(te, 2), "c");
    ot_data_free(te);
    CHECK_EQ_INT(n_tr, 4);
    CHECK_EQ_INT(nc_tr, 3);
    CHECK(te_ok);
    CHECK(l[0] == 0 && l[1] == 2 && l[2] == 2); /* c is train's class 2 */

    /* A test class that train lacks; a test split of empty class folders. */
    char root2[512];
    tmp_root(root2, sizeof root2, "fold_split2");
    join(p, sizeof p, root2, "train/a/1.png");
    CHECK(tiny_png(p, 2, 2, 0));
    join(p, sizeof p, root2, "test/zz/1.png");
    CHECK(tiny_png(p, 2, 2, 0));
    CHECK(open_fails(root2, OT_DATA_TEST, OT_ERR_PARSE, "zz", "train"));
    char root3[512];
    tmp_root(root3, sizeof root3, "fold_split3");
    join(p, sizeof p, root3, "train/a/1.png");
    CHECK(tiny_png(p, 2, 2, 0));
    snprintf(p, sizeof p, "%s/val/a", root3);
    mkdirs(p);
    CHECK(open_fails(root3, OT_DATA_TEST, OT_ERR_PARSE, "val", "no .jpg"));
    char root4[512]; /* a val/ with no class folders at all */
    tmp_root(root4, sizeof root4, "fold_split4/val");
    join(p, sizeof p, root4, "../train/a/1.png");
    CHECK(tiny_png(p, 2, 2, 0));
    snprintf(root4, sizeof root4, "%s/fold_split4", ot_test_tmpdir());
    CHECK(open_fails(root4, OT_DATA_TEST, OT_ERR_PARSE, "0 class folders", NULL));
}

TEST(folder_not_an_image_folder)
{
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_none");
    CHECK(open_fails(root, OT_DATA_TRAIN, OT_ERR_UNSUPPORTED, "no class folders",
                     "image folder"));
    join(p, sizeof p, root, "a/readme.txt");
    CHECK(write_file(p, "x", 1));
    snprintf(p, sizeof p, "%s/b", root);
    mkdirs(p);
    CHECK(open_fails(root, OT_DATA_TRAIN, OT_ERR_UNSUPPORTED, "2 sub-folders", "no .jpg"));
    CHECK(!ot_data_has_split(root, OT_DATA_TRAIN));
}

/* ---------------------------------------------------------- PNG decode */

typedef struct {
    const char *name;
    int color, depth;
    bool interlace;
    int w, h;
    int out_c;
} png_case;

/* Packs a sample of `depth` bits (1, 2, 4 or 8) at sample index `at` of a row. */
static void pack(uint8_t *row, size_t at, int depth, unsigned v)
{
    if (depth == 8) {
        row[at] = (uint8_t)v;
        return;
    }
    size_t bit = at * (size_t)depth;
    row[bit / 8] |= (uint8_t)(v << (8 - depth - (int)(bit % 8)));
}

/* Raw PNG rows for a case, and the planar pixels we expect back. */
static void png_case_data(const png_case *pc, uint8_t *raw, uint8_t *want, png_color *pal,
                          uint8_t *trans)
{
    const int w = pc->w, h = pc->h;
    const size_t plane = (size_t)w * h;
    for (int i = 0; i < 16; i++) {
        pal[i].red = (uint8_t)(i * 16);
        pal[i].green = (uint8_t)(255 - i * 9);
        pal[i].blue = (uint8_t)(i * i);
        trans[i] = (uint8_t)(i * 10);
    }
    int comps = pc->color == PNG_COLOR_TYPE_GRAY || pc->color == PNG_COLOR_TYPE_PALETTE ? 1
                : pc->color == PNG_COLOR_TYPE_GRAY_ALPHA                            ? 2
                : pc->color == PNG_COLOR_TYPE_RGB                                   ? 3
                                                                                    : 4;
    size_t rowbytes = ((size_t)w * comps * pc->depth + 7) / 8;
    memset(raw, 0, rowbytes * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < comps; c++) {
                unsigned v = (unsigned)(x * 37 + y * 91 + c * 53 + x * y) & 0xffff;
                uint8_t *row = raw + (size_t)y * rowbytes;
                size_t at = (size_t)x * comps + c, px = (size_t)y * w + x;
                if (pc->color == PNG_COLOR_TYPE_PALETTE) {
                    v %= 16;
                    pack(row, at, pc->depth, v);
                    want[px] = pal[v].red;
                    want[plane + px] = pal[v].green;
                    want[2 * plane + px] = pal[v].blue;
                    continue;
                }
                uint8_t out;
                if (pc->depth == 16) {
                    v = (v * 2654435761u) >> 16 & 0xffff;
                    row[2 * at] = (uint8_t)(v >> 8);
                    row[2 * at + 1] = (uint8_t)v;
                    out = (uint8_t)(v >> 8); /* the high byte */
                } else {
                    unsigned max = (1u << pc->depth) - 1;
                    v %= max + 1;
                    pack(row, at, pc->depth, v);
                    out = (uint8_t)(v * 255 / max); /* low depths scaled to 0..255 */
                }
                if (c < pc->out_c) /* alpha is dropped */
                    want[(size_t)c * plane + px] = out;
            }
}

TEST(folder_png_decode_exact)
{
    static const png_case cases[] = {
        {"p00_rgb8.png", PNG_COLOR_TYPE_RGB, 8, false, 13, 7, 3},
        {"p01_gray8.png", PNG_COLOR_TYPE_GRAY, 8, false, 9, 11, 1},
        {"p02_gray4.png", PNG_COLOR_TYPE_GRAY, 4, false, 7, 5, 1},
        {"p03_gray1.png", PNG_COLOR_TYPE_GRAY, 1, false, 11, 3, 1},
        {"p04_palette8.png", PNG_COLOR_TYPE_PALETTE, 8, false, 10, 6, 3},
        {"p05_palette4_trns.png", PNG_COLOR_TYPE_PALETTE, 4, false, 9, 4, 3},
        {"p06_rgba8.png", PNG_COLOR_TYPE_RGB_ALPHA, 8, false, 8, 8, 3},
        {"p07_gray_alpha8.png", PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, 6, 9, 1},
        {"p08_rgb16.png", PNG_COLOR_TYPE_RGB, 16, false, 5, 7, 3},
        {"p09_gray16.png", PNG_COLOR_TYPE_GRAY, 16, false, 7, 5, 1},
        {"p10_rgba16.png", PNG_COLOR_TYPE_RGB_ALPHA, 16, false, 4, 6, 3},
        {"p11_rgb8_adam7.png", PNG_COLOR_TYPE_RGB, 8, true, 19, 13, 3},
        {"p12_gray8_adam7.png", PNG_COLOR_TYPE_GRAY, 8, true, 17, 9, 1},
        {"p13_palette_adam7.png", PNG_COLOR_TYPE_PALETTE, 8, true, 11, 10, 3},
        {"p14_rgba16_adam7.png", PNG_COLOR_TYPE_RGB_ALPHA, 16, true, 9, 9, 3},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_png");
    uint8_t *raw = malloc(64 * 64 * 8), *want[N];
    png_color pal[16];
    uint8_t trans[16];
    for (int k = 0; k < N; k++) {
        const png_case *pc = &cases[k];
        want[k] = malloc((size_t)pc->w * pc->h * 3);
        png_case_data(pc, raw, want[k], pal, trans);
        char name[128];
        snprintf(name, sizeof name, "pngs/%s", pc->name);
        join(p, sizeof p, root, name);
        bool is_pal = pc->color == PNG_COLOR_TYPE_PALETTE;
        CHECK(write_png(p, pc->w, pc->h, pc->color, pc->depth, pc->interlace, raw,
                        is_pal ? pal : NULL, 16, is_pal && pc->depth == 4 ? trans : NULL, 16));
    }
    free(raw);
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &ds, &err), &err);
    int fails = 0;
    for (int k = 0; k < N && k < ot_data_count(ds); k++) {
        const png_case *pc = &cases[k];
        ot_image img;
        uint8_t *got = decode_alloc(ds, k, &img, &err);
        size_t bytes = (size_t)pc->out_c * pc->w * pc->h;
        bool ok = got && img.width == pc->w && img.height == pc->h && img.channels == pc->out_c &&
                  memcmp(got, want[k], bytes) == 0;
        if (!ok) {
            printf("  %s: %s", pc->name, got ? "" : err.msg);
            if (got) {
                printf("%d x %d x %d (want %d x %d x %d)", img.height, img.width, img.channels,
                       pc->h, pc->w, pc->out_c);
                for (size_t i = 0; i < bytes; i++)
                    if (got[i] != want[k][i]) {
                        printf(", first difference at %zu: %d, want %d", i, got[i], want[k][i]);
                        break;
                    }
            }
            printf("\n");
            fails++;
        }
        free(got);
    }
    int64_t count = ot_data_count(ds);
    ot_data_free(ds);
    for (int k = 0; k < N; k++)
        free(want[k]);
    CHECK_EQ_INT(count, N);
    CHECK_EQ_INT(fails, 0);
}

/* --------------------------------------------------------- JPEG decode */

/* PIL's decode of each file, converted as ImageFolder's loader would (mode L
   kept, everything else .convert("RGB")), as planar bytes. NULL when
   python3 or PIL is missing. */
static uint8_t **pil_decode(char paths[][1024], int n, int *chans, int *hs, int *ws)
{
    static const char script[] =
        "import sys\n"
        "from PIL import Image\n"
        "for p in sys.argv[1:]:\n"
        "    im = Image.open(p)\n"
        "    im = im if im.mode == 'L' else im.convert('RGB')\n"
        "    c = 1 if im.mode == 'L' else 3\n"
        "    b = im.tobytes()\n"
        "    pl = bytes(b[i::c][j] for i in range(c) for j in range(len(b) // c))\n"
        "    print(c, im.size[1], im.size[0], pl.hex())\n";
    char *cmd = malloc(200000);
    size_t at = (size_t)snprintf(cmd, 200000, "%s -c \"%s\"", PIL_PYTHON, script);
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(cmd + at, 200000 - at, " '%s'", paths[i]);
    snprintf(cmd + at, 200000 - at, " 2>/dev/null");
    FILE *f = popen(cmd, "r");
    free(cmd);
    if (!f)
        return NULL;
    uint8_t **out = calloc((size_t)n, sizeof *out);
    char *line = NULL;
    size_t cap = 0;
    int got = 0;
    while (got < n && getline(&line, &cap, f) > 0) {
        int c, h, w, off;
        if (sscanf(line, "%d %d %d %n", &c, &h, &w, &off) != 3)
            break;
        size_t bytes = (size_t)c * h * w;
        out[got] = malloc(bytes);
        for (size_t i = 0; i < bytes; i++) {
            unsigned v = 0;
            sscanf(line + off + 2 * i, "%2x", &v);
            out[got][i] = (uint8_t)v;
        }
        chans[got] = c;
        hs[got] = h;
        ws[got] = w;
        got++;
    }
    free(line);
    int rc = pclose(f);
    if (rc != 0 || got != n) {
        for (int i = 0; i < n; i++)
            free(out[i]);
        free(out);
        return NULL;
    }
    return out;
}

/* PIL's CMYK to RGB on stored (Adobe-inverted) values. */
static uint8_t cmyk_to_rgb(uint8_t stored_c, uint8_t stored_k)
{
    int nk = stored_k, ink = 255 - stored_c;
    int t = ink * nk + 128;
    return (uint8_t)(nk - (((t >> 8) + t) >> 8));
}

TEST(folder_jpeg_decode)
{
    enum { W = 24, H = 16, N = 7 };
    char root[512];
    tmp_root(root, sizeof root, "fold_jpeg");
    static const char *const names[N] = {"j0_rgb.jpg",        "j1_rgb_progressive.jpg",
                                         "j2_gray.jpg",       "j3_cmyk.jpg",
                                         "j4_ycck.jpg",       "j5_rgb_420.jpg",
                                         "j6_gray_prog.jpeg"};
    char paths[N][1024];
    for (int k = 0; k < N; k++) {
        char name[128];
        snprintf(name, sizeof name, "c/%s", names[k]);
        join(paths[k], sizeof paths[k], root, name);
    }
    uint8_t *rgb = pattern(W, H, 3, false), *gray = pattern(W, H, 1, false);
    uint8_t *cmyk = pattern(W, H, 4, false);
    CHECK(write_jpeg(paths[0], W, H, 3, JCS_RGB, JCS_UNKNOWN, rgb, 100, false, true));
    CHECK(write_jpeg(paths[1], W, H, 3, JCS_RGB, JCS_UNKNOWN, rgb, 100, true, true));
    CHECK(write_jpeg(paths[2], W, H, 1, JCS_GRAYSCALE, JCS_UNKNOWN, gray, 100, false, true));
    CHECK(write_jpeg(paths[3], W, H, 4, JCS_CMYK, JCS_CMYK, cmyk, 100, false, true));
    CHECK(write_jpeg(paths[4], W, H, 4, JCS_CMYK, JCS_YCCK, cmyk, 100, false, true));
    CHECK(write_jpeg(paths[5], W, H, 3, JCS_RGB, JCS_UNKNOWN, rgb, 95, false, false));
    CHECK(write_jpeg(paths[6], W, H, 1, JCS_GRAYSCALE, JCS_UNKNOWN, gray, 100, true, true));
    /* What each should decode to, planar: the source, or PIL's CMYK -> RGB of it. */
    const size_t plane = (size_t)W * H;
    uint8_t *src_rgb = pattern(W, H, 3, true), *src_gray = pattern(W, H, 1, true);
    uint8_t *src_cmyk = malloc(3 * plane);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            src_cmyk[c * plane + i] = cmyk_to_rgb(cmyk[4 * i + c], cmyk[4 * i + 3]);
    free(rgb);
    free(gray);
    free(cmyk);
    const uint8_t *want[N] = {src_rgb, src_rgb, src_gray, src_cmyk, src_cmyk, src_rgb, src_gray};
    static const int want_c[N] = {3, 3, 1, 3, 3, 3, 1};
    static const int tol[N] = {2, 2, 1, 2, 2, 4, 1}; /* 4:2:0 averages chroma */

    int pc[N], ph[N], pw[N];
    uint8_t **pil = pil_decode(paths, N, pc, ph, pw);
    if (!pil)
        printf("  (no PIL in %s: JPEG checked against the source only)\n", PIL_PYTHON);

    ot_err err;
    ot_dataset *ds = NULL;
    ot_status st = ot_data_open(root, OT_DATA_TRAIN, &ds, &err);
    int fails = 0;
    for (int k = 0; st == OT_OK && k < N; k++) {
        ot_image img;
        uint8_t *got = decode_alloc(ds, k, &img, &err);
        if (!got || img.height != H || img.width != W || img.channels != want_c[k]) {
            printf("  %s: %s\n", names[k], got ? "wrong shape" : err.msg);
            fails++;
            free(got);
            continue;
        }
        size_t bytes = (size_t)want_c[k] * plane, worst = 0;
        int max_d = 0;
        for (size_t i = 0; i < bytes; i++) {
            int d = abs(got[i] - want[k][i]);
            if (d > max_d) {
                max_d = d;
                worst = i;
            }
        }
        if (max_d > tol[k]) {
            printf("  %s: worst element %zu: %d, want %d (tolerance %d)\n", names[k], worst,
                   got[worst], want[k][worst], tol[k]);
            fails++;
        }
        if (pil && (pc[k] != img.channels || ph[k] != H || pw[k] != W ||
                    memcmp(pil[k], got, bytes) != 0)) {
            size_t i = 0;
            while (i + 1 < bytes && pil[k][i] == got[i])
                i++;
            printf("  %s: differs from PIL (%d x %d x %d): element %zu: %d, PIL %d\n", names[k],
                   pc[k], ph[k], pw[k], i, got[i], pil[k][i]);
            fails++;
        }
        free(got);
    }
    ot_data_free(ds);
    for (int k = 0; pil && k < N; k++)
        free(pil[k]);
    free(pil);
    free(src_rgb);
    free(src_gray);
    free(src_cmyk);
    CHECK_OK(st, &err);
    CHECK_EQ_INT(fails, 0);
}

/* ----------------------------------------------------------- bad files */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* A PNG chunk with its CRC at p; returns its size. */
static size_t png_chunk(uint8_t *p, const char *type, const uint8_t *data, uint32_t n)
{
    put_be32(p, n);
    memcpy(p + 4, type, 4);
    if (n)
        memcpy(p + 8, data, n);
    put_be32(p + 8 + n, (uint32_t)crc32(0, p + 4, 4 + n));
    return 12 + n;
}

TEST(folder_bad_images_name_the_file)
{
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_bad");
    /* b0 is good; every other file is bad in its own way. */
    join(p, sizeof p, root, "k/b0_good.png");
    CHECK(tiny_png(p, 5, 5, 1));
    uint8_t *big = pattern(64, 48, 3, false);
    size_t n;
    /* Truncated baseline and progressive JPEGs. */
    for (int prog = 0; prog < 2; prog++) {
        join(p, sizeof p, root, prog ? "k/b2_trunc_prog.jpg" : "k/b1_trunc.jpg");
        CHECK(write_jpeg(p, 64, 48, 3, JCS_RGB, JCS_UNKNOWN, big, 90, prog, false));
        uint8_t *b = read_file(p, &n);
        CHECK(write_file(p, b, n * 6 / 10));
        free(b);
    }
    /* A PNG with a flipped byte in its IDAT's CRC, and a truncated one. */
    join(p, sizeof p, root, "k/b3_crc.png");
    CHECK(write_png(p, 64, 48, PNG_COLOR_TYPE_RGB, 8, false, big, NULL, 0, NULL, 0));
    uint8_t *b = read_file(p, &n);
    uint8_t *idat = memmem(b, n, "IDAT", 4);
    CHECK(idat);
    idat[4 + be32(idat - 4) + 1] ^= 0x55;
    CHECK(write_file(p, b, n));
    join(p, sizeof p, root, "k/b4_trunc.png");
    idat[4 + be32(idat - 4) + 1] ^= 0x55;
    CHECK(write_file(p, b, n / 2));
    free(b);
    free(big);
    /* Text named .jpg; an empty .png. */
    join(p, sizeof p, root, "k/b5_text.jpg");
    CHECK(write_file(p, "GIF89a not really", 17));
    join(p, sizeof p, root, "k/b6_empty.png");
    CHECK(write_file(p, "", 0));
    /* Over the limits: 17000 x 8 (side), 10000 x 10000 (pixels; header only). */
    join(p, sizeof p, root, "k/b7_wide.jpg");
    uint8_t *wide = calloc(17000, 8);
    CHECK(write_jpeg(p, 17000, 8, 1, JCS_GRAYSCALE, JCS_UNKNOWN, wide, 50, false, true));
    free(wide);
    join(p, sizeof p, root, "k/b8_huge.png");
    uint8_t png[128], ihdr[13] = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(png, sig, 8);
    put_be32(ihdr, 10000);
    put_be32(ihdr + 4, 10000);
    ihdr[8] = 8; /* gray, 8 bits */
    size_t at = 8 + png_chunk(png + 8, "IHDR", ihdr, 13);
    at += png_chunk(png + at, "IDAT", (const uint8_t *)"\x78\x9c", 2);
    CHECK(write_file(p, png, at));

    static const char *const want[] = {
        NULL,        "Premature end", "Premature end", "CRC error", "corrupt PNG",
        "not a JPEG", "empty file",   "over the limit", "over the limit",
    };
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &ds, &err), &err);
    int fails = 0;
    uint8_t *buf = malloc(1 << 20);
    for (int64_t i = 1; i < 9 && i < ot_data_count(ds); i++) {
        ot_image img = {.data = NULL, .height = -7};
        int label = -1;
        ot_err e1, e2;
        ot_err_init(&e1);
        ot_err_init(&e2);
        ot_status s1 = ot_data_get(ds, i, &img, &label, &e1);
        ot_status s2 = ot_data_decode(ds, i, &img, buf, 1 << 20, &e2);
        ot_status s3 = ot_data_get(ds, i, NULL, &label, &err);
        char file[64];
        snprintf(file, sizeof file, "/k/b%d_", (int)i);
        bool ok = s1 == OT_ERR_PARSE && s2 == OT_ERR_PARSE && ot_data_is_bad_image_error(&e1) &&
                  strstr(e1.msg, file) && strstr(e1.msg, want[i]) && strstr(e2.msg, file) &&
                  img.data == NULL && img.height == -7 && s3 == OT_OK && label == 0;
        if (!ok) {
            printf("  image %lld: get %d, decode %d, label %d: %s | %s\n", (long long)i, (int)s1,
                   (int)s2, label, e1.msg, e2.msg);
            fails++;
        }
    }
    /* Through a batch: the error names the item and the file. */
    ot_data_transform t;
    ot_data_transform_init(&t, 8, OT_DATA_NORM_NONE);
    size_t sb = ot_data_batch_scratch_bytes(ds, &t);
    void *scratch = malloc(sb);
    float x[2 * 3 * 64];
    int64_t idx[2] = {0, 1}, labels[2];
    ot_status sbatch = ot_data_load_batch(ds, idx, 2, &t, x, labels, scratch, sb, &err);
    bool batch_ok = sbatch == OT_ERR_PARSE && ot_data_is_bad_image_error(&err) &&
                    strstr(err.msg, "batch item 1") && strstr(err.msg, "b1_trunc.jpg");
    if (!batch_ok)
        printf("  batch: %d: %s\n", (int)sbatch, err.msg);
    /* A good image into too small a buffer is an argument error, not a bad image. */
    ot_image img;
    ot_status ssmall = ot_data_decode(ds, 0, &img, buf, 10, &err);
    bool small_ok = ssmall == OT_ERR_ARG && !ot_data_is_bad_image_error(&err) &&
                    strstr(err.msg, "needs 25 bytes");
    if (!small_ok)
        printf("  small buffer: %d: %s\n", (int)ssmall, err.msg);
    free(scratch);
    free(buf);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
    CHECK(batch_ok);
    CHECK(small_ok);
}

/* -------------------------------------------------------------- batches */

TEST(folder_load_batch_mixed_sizes)
{
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_batch");
    uint8_t *px = pattern(40, 30, 3, false);
    join(p, sizeof p, root, "a/0.png");
    CHECK(write_png(p, 40, 30, PNG_COLOR_TYPE_RGB, 8, false, px, NULL, 0, NULL, 0));
    free(px);
    px = pattern(17, 50, 1, false);
    join(p, sizeof p, root, "a/1.png");
    CHECK(write_png(p, 17, 50, PNG_COLOR_TYPE_GRAY, 8, false, px, NULL, 0, NULL, 0));
    free(px);
    join(p, sizeof p, root, "b/2.jpg");
    CHECK(tiny_jpeg(p, 33, 21));
    join(p, sizeof p, root, "b/3.png");
    CHECK(tiny_png(p, 8, 8, 100)); /* smaller than the output: enlarged */

    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &ds, &err), &err);
    enum { B = 5, S = 16, PER = 3 * S * S };
    int fails = 0;
    float *x = malloc(B * PER * sizeof *x), *one = malloc(PER * sizeof *one);
    int64_t idx[B] = {3, 1, 0, 2, 1}, labels[B];
    for (int rgb = 0; rgb < 2; rgb++) {
        ot_data_transform t;
        ot_data_transform_init(&t, S, OT_DATA_NORM_IMAGENET);
        t.to_rgb = rgb != 0; /* image folders give 3 channels either way */
        size_t sb = ot_data_batch_scratch_bytes(ds, &t);
        void *scratch = malloc(sb);
        ot_status st = ot_data_load_batch(ds, idx, B, &t, x, labels, scratch, sb, &err);
        if (st != OT_OK) {
            printf("  load_batch: %s\n", err.msg);
            fails++;
        }
        t.to_rgb = true;
        for (int b = 0; st == OT_OK && b < B; b++) {
            ot_image img;
            uint8_t *buf = decode_alloc(ds, idx[b], &img, &err);
            fails += !buf;
            fails += buf && ot_data_prepare(&img, &t, one, scratch, sb, &err) != OT_OK;
            fails += buf && memcmp(one, x + (size_t)b * PER, PER * sizeof *one) != 0;
            fails += labels[b] != (idx[b] >= 2);
            free(buf);
        }
        free(scratch);
    }
    /* Too small a scratch, and an index out of range: argument errors. */
    ot_data_transform t;
    ot_data_transform_init(&t, S, OT_DATA_NORM_IMAGENET);
    uint8_t small[4096];
    ot_status st_small = ot_data_load_batch(ds, idx, B, &t, x, labels, small, sizeof small, &err);
    bool small_ok = st_small == OT_ERR_ARG && strstr(err.msg, "ot_data_batch_scratch_bytes");
    int64_t bad_idx[2] = {0, 4};
    size_t sb = ot_data_batch_scratch_bytes(ds, &t);
    void *scratch = malloc(sb);
    ot_status st_idx = ot_data_load_batch(ds, bad_idx, 2, &t, x, labels, scratch, sb, &err);
    bool idx_ok = st_idx == OT_ERR_ARG && strstr(err.msg, "batch item 1") &&
                  strstr(err.msg, "index 4");
    free(scratch);
    size_t max_bytes = ot_data_max_image_bytes(ds);
    bool sb_ok = sb > max_bytes;
    free(x);
    free(one);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
    CHECK(small_ok);
    CHECK(idx_ok);
    CHECK_EQ_INT(max_bytes, (size_t)3 * OT_DATA_MAX_PIXELS);
    CHECK(sb_ok);
}

/* ---------------------------------------------------------- threads */

typedef struct {
    const ot_dataset *ds;
    uint8_t *const *want;
    const size_t *want_bytes;
    int n;
    int fails;
} thread_job;

static void *get_many(void *arg)
{
    thread_job *j = arg;
    ot_err err;
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < j->n; i++) {
            int k = (i * 7 + round) % j->n;
            ot_image img;
            if (ot_data_get(j->ds, k, &img, NULL, &err) != OT_OK ||
                (size_t)img.channels * img.height * img.width != j->want_bytes[k] ||
                memcmp(img.data, j->want[k], j->want_bytes[k]) != 0)
                j->fails++;
        }
    return NULL;
}

TEST(folder_get_from_threads)
{
    enum { N = 6, T = 4 };
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_threads");
    for (int k = 0; k < N; k++) {
        snprintf(p, sizeof p, "c%d/%d.%s", k % 2, k, k % 3 ? "png" : "jpg");
        char path[1024];
        join(path, sizeof path, root, p);
        CHECK(k % 3 ? tiny_png(path, 10 + 3 * k, 7 + k, (uint8_t)k) : tiny_jpeg(path, 9 + k, 20));
    }
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &ds, &err), &err);
    uint8_t *want[N];
    size_t want_bytes[N];
    int fails = 0;
    for (int k = 0; k < N; k++) {
        ot_image img;
        want[k] = decode_alloc(ds, k, &img, &err);
        want_bytes[k] = want[k] ? (size_t)img.channels * img.height * img.width : 0;
        fails += !want[k];
    }
    thread_job jobs[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (thread_job){ds, want, want_bytes, N, 0};
        pthread_create(&th[t], NULL, get_many, &jobs[t]);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        fails += jobs[t].fails;
    }
    for (int k = 0; k < N; k++)
        free(want[k]);
    ot_data_free(ds);
    CHECK_EQ_INT(fails, 0);
}

/* --------------------------------------------------- validation split */

TEST(folder_split_indices_stratified)
{
    static const int sizes[4] = {10, 20, 7, 1};
    char root[512], p[1024];
    tmp_root(root, sizeof root, "fold_valsplit");
    join(p, sizeof p, root, "c0/0000.png");
    CHECK(tiny_png(p, 2, 2, 0));
    size_t n_png;
    uint8_t *png = read_file(p, &n_png);
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < sizes[c]; i++) {
            char name[64];
            snprintf(name, sizeof name, "c%d/%04d.png", c, i);
            join(p, sizeof p, root, name);
            CHECK(write_file(p, png, n_png));
        }
    free(png);
    ot_err err;
    ot_dataset *ds = NULL;
    CHECK_OK(ot_data_open(root, OT_DATA_TRAIN, &ds, &err), &err);
    int64_t *tr = NULL, *va = NULL, *tr2 = NULL, *va2 = NULL, *va3 = NULL, *tr3 = NULL;
    int64_t nt = 0, nv = 0, nt2 = 0, nv2 = 0, nt3 = 0, nv3 = 0;
    ot_status st1 = ot_data_split_indices(ds, 0.2, 42, &tr, &nt, &va, &nv, &err);
    ot_status st2 = ot_data_split_indices(ds, 0.2, 42, &tr2, &nt2, &va2, &nv2, &err);
    ot_status st3 = ot_data_split_indices(ds, 0.2, 43, &tr3, &nt3, &va3, &nv3, &err);
    int per_class[4] = {0}, fails = 0;
    uint8_t seen[38] = {0};
    for (int64_t k = 0; st1 == OT_OK && k < nv; k++) {
        int label;
        ot_data_get(ds, va[k], NULL, &label, &err);
        per_class[label]++;
        seen[va[k]]++;
        fails += k > 0 && va[k] <= va[k - 1];
    }
    for (int64_t k = 0; st1 == OT_OK && k < nt; k++) {
        seen[tr[k]]++;
        fails += k > 0 && tr[k] <= tr[k - 1];
    }
    for (int i = 0; i < 38; i++)
        fails += seen[i] != 1;
    bool same = st2 == OT_OK && nv2 == nv && nt2 == nt &&
                memcmp(va, va2, (size_t)nv * sizeof *va) == 0 &&
                memcmp(tr, tr2, (size_t)nt * sizeof *tr) == 0;
    bool differs = st3 == OT_OK && nv3 == nv && memcmp(va, va3, (size_t)nv * sizeof *va) != 0;
    ot_free(tr);
    ot_free(va);
    ot_free(tr2);
    ot_free(va2);
    ot_free(tr3);
    ot_free(va3);
    /* Fractions outside (0, 1). */
    int arg_fails = 0;
    const double bad[3] = {0.0, 1.0, -0.5};
    for (int k = 0; k < 3; k++) {
        int64_t dummy[2], *a = &dummy[0], *v = &dummy[1];
        int64_t na = 5, nvv = 5;
        arg_fails += ot_data_split_indices(ds, bad[k], 1, &a, &na, &v, &nvv, &err) != OT_ERR_ARG ||
                     a || v || na || nvv;
    }
    ot_data_free(ds);
    CHECK_OK(st1, &err);
    CHECK_EQ_INT(nv, 7);
    CHECK_EQ_INT(nt, 31);
    CHECK(per_class[0] == 2 && per_class[1] == 4 && per_class[2] == 1 && per_class[3] == 0);
    CHECK_EQ_INT(fails, 0);
    CHECK(same);
    CHECK(differs);
    CHECK_EQ_INT(arg_fails, 0);
}
