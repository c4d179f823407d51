/*
 * decode.c: JPEG and PNG files to planar uint8 images, decoded as PIL
 * decodes them and then converts with .convert("RGB") (gray stays 1
 * channel; the transform replicates it).
 *
 * JPEG goes through libjpeg-turbo (jpeglib.h), PNG through libpng 1.6
 * (png.h); the format is told by the file's first bytes. Both libraries
 * report errors through callbacks that must not return, so each decoder runs
 * its library calls in a function that sets a jmp_buf, and the callbacks
 * longjmp back to it with the message. Everything that must be released
 * afterwards (the FILE, library state, our row buffers) lives in a job struct
 * owned by the caller's frame, never in locals of the function that calls
 * setjmp, so nothing is lost across the jump.
 *
 * libjpeg's warnings (emit_message at level -1) report corrupt data it has
 * worked around, e.g. "Premature end of JPEG file" before it fills the rest of
 * the image with grey. Those are errors here. Two warnings that only mean an
 * unknown version number (JFIF, Adobe transform) are let through.
 *
 * Thread-safe: no state outside the call. Not here: other formats (GIF, BMP,
 * WebP, TIFF), EXIF orientation (PIL ignores it too), ICC profiles, gamma.
 */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

#include "core/file.h"
#include "data/data_impl.h"

/* Progressive JPEGs can hold any number of scans, each a pass over the whole
   image; a hostile file can make decoding take minutes. djpeg -maxscans. */
#define JPEG_MAX_SCANS 1000

/* Fails unless h x w is within OT_DATA_MAX_SIDE per side and OT_DATA_MAX_PIXELS. */
static ot_status check_size(const char *path, const char *what, long long h, long long w,
                            ot_err *err)
{
    if (h < 1 || w < 1)
        return ot_err_set(err, OT_ERR_PARSE, "%s: %s image of %lld x %lld pixels", path, what, h,
                          w);
    if (h > OT_DATA_MAX_SIDE || w > OT_DATA_MAX_SIDE || h * w > OT_DATA_MAX_PIXELS)
        return ot_err_set(err, OT_ERR_PARSE,
                          "%s: %s image of %lld x %lld pixels is over the limit (%d per side, "
                          "%d MPixels)",
                          path, what, h, w, OT_DATA_MAX_SIDE, OT_DATA_MAX_PIXELS >> 20);
    return OT_OK;
}

/* ------------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg hands us a pointer to it */
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    bool nomem;
} jpeg_fail;

typedef struct {
    const char *path;
    FILE *f;
    ot_data_dest_fn dest;
    void *user;
    ot_image *img;
    ot_err *err;
    ot_status st; /* set, with err, by our own checks; OT_OK when libjpeg failed */
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    jpeg_fail fail;
} jpeg_job;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_fail *e = (jpeg_fail *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    e->nomem = cinfo->err->msg_code == JERR_OUT_OF_MEMORY;
    longjmp(e->jmp, 1);
}

/* Level -1 is a warning about corrupt data; higher levels are trace output. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    int code = cinfo->err->msg_code;
    if (level == -1 && code != JWRN_JFIF_MAJOR && code != JWRN_ADOBE_XFORM)
        jpeg_on_error(cinfo);
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

static void jpeg_on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_fail *e = (jpeg_fail *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        e->nomem = false;
        longjmp(e->jmp, 1);
    }
}

/* PIL's MULDIV255: a * b / 255, rounded. */
static inline int muldiv255(int a, int b)
{
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

/* The library calls; false on failure (j->st set, or libjpeg's message in j->fail). */
static bool jpeg_run(jpeg_job *j)
{
    struct jpeg_decompress_struct *ci = &j->cinfo;
    if (setjmp(j->fail.jmp))
        return false;
    jpeg_create_decompress(ci);
    ci->progress = &j->progress;
    jpeg_stdio_src(ci, j->f);
    jpeg_read_header(ci, TRUE);
    j->st = check_size(j->path, "JPEG", ci->image_height, ci->image_width, j->err);
    if (j->st != OT_OK)
        return false;
    bool cmyk = false;
    switch (ci->jpeg_color_space) {
    case JCS_GRAYSCALE:
        ci->out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        ci->out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        ci->out_color_space = JCS_CMYK;
        cmyk = true;
        break;
    default:
        j->st = ot_err_set(j->err, OT_ERR_PARSE,
                           "%s: JPEG with %d components in an unknown colour space", j->path,
                           ci->num_components);
        return false;
    }
    jpeg_start_decompress(ci);
    int h = (int)ci->output_height, w = (int)ci->output_width;
    int in_c = ci->output_components, C = cmyk ? 3 : in_c;
    if ((cmyk && in_c != 4) || (!cmyk && in_c != 1 && in_c != 3)) {
        j->st = ot_err_set(j->err, OT_ERR_INTERNAL, "%s: libjpeg gave %d components", j->path,
                           in_c);
        return false;
    }
    uint8_t *out = j->dest(j->user, h, w, C, j->err);
    if (!out) {
        j->st = j->err->code != OT_OK ? j->err->code : OT_ERR_INTERNAL;
        return false;
    }
    /* One interleaved row, in libjpeg's pool: jpeg_destroy frees it. */
    JSAMPARRAY row = (*ci->mem->alloc_sarray)((j_common_ptr)ci, JPOOL_IMAGE,
                                              (JDIMENSION)w * (JDIMENSION)in_c, 1);
    const size_t plane = (size_t)h * w;
    while (ci->output_scanline < ci->output_height) {
        size_t y = ci->output_scanline;
        jpeg_read_scanlines(ci, row, 1);
        const uint8_t *r = row[0];
        uint8_t *o = out + y * (size_t)w;
        if (in_c == 1) {
            memcpy(o, r, (size_t)w);
        } else if (!cmyk) {
            for (int x = 0; x < w; x++) {
                o[x] = r[3 * x];
                o[plane + x] = r[3 * x + 1];
                o[2 * plane + x] = r[3 * x + 2];
            }
        } else {
            /* Stored values are inverted (Adobe): ink = 255 - stored. PIL's
               cmyk2rgb: out = nk - ink * nk / 255, nk = 255 - ink_k = stored k. */
            for (int x = 0; x < w; x++) {
                int nk = r[4 * x + 3];
                for (int c = 0; c < 3; c++)
                    o[(size_t)c * plane + x] = (uint8_t)(nk - muldiv255(255 - r[4 * x + c], nk));
            }
        }
    }
    /* Not jpeg_finish_decompress: every pixel is in, and a file that stops
       right after its image data (no EOI marker) decodes in PIL too. */
    j->img->data = out;
    j->img->height = h;
    j->img->width = w;
    j->img->channels = C;
    return true;
}

static ot_status decode_jpeg(const char *path, FILE *f, ot_data_dest_fn dest, void *user,
                             ot_image *img, ot_err *err)
{
    ot_status st = OT_OK;
    jpeg_job *j = ot_calloc(1, sizeof *j);
    if (!j)
        return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory", path);
    *j = (jpeg_job){.path = path, .f = f, .dest = dest, .user = user, .img = img, .err = err};
    j->cinfo.err = jpeg_std_error(&j->fail.pub);
    j->fail.pub.error_exit = jpeg_on_error;
    j->fail.pub.emit_message = jpeg_on_message;
    j->fail.pub.output_message = jpeg_on_output;
    j->progress.progress_monitor = jpeg_on_progress;
    if (!jpeg_run(j)) {
        if (j->st != OT_OK)
            st = j->st;
        else if (j->fail.nomem)
            st = ot_err_set(err, OT_ERR_NOMEM, "%s: JPEG: %s", path, j->fail.msg);
        else
            st = ot_err_set(err, OT_ERR_PARSE, "%s: corrupt JPEG: %s", path, j->fail.msg);
    }
    /* Safe after a failed jpeg_create_decompress too: it zeroes the struct
       before it allocates, and destroy skips what was never made. */
    jpeg_destroy_decompress(&j->cinfo);
    ot_free(j);
    return st;
}

/* -------------------------------------------------------------------- PNG */

typedef struct {
    const char *path;
    FILE *f;
    ot_data_dest_fn dest;
    void *user;
    ot_image *img;
    ot_err *err;
    ot_status st; /* set, with err, by our own checks; OT_OK when libpng failed */
    png_structp png;
    png_infop info;
    jmp_buf jmp;
    char msg[256];
    uint8_t *row;      /* owned: one interleaved row                        */
    uint8_t *full;     /* owned: the whole interleaved image (interlaced)   */
    png_bytep *rows;   /* owned: row pointers for png_read_image            */
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    longjmp(j->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    ot_log(OT_LOG_DEBUG, "%s: PNG: %s", j->path, msg);
}

/* Interleaved rows (pc channels, 1 .. 4) to planes: the first C channels. */
static void png_scatter(const uint8_t *r, int pc, int C, int w, uint8_t *o, size_t plane)
{
    for (int c = 0; c < C; c++)
        for (int x = 0; x < w; x++)
            o[(size_t)c * plane + x] = r[(size_t)x * pc + c];
}

static bool png_run(png_job *j)
{
    if (setjmp(j->jmp))
        return false;
    j->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, j, png_on_error, png_on_warning);
    if (!j->png) {
        j->st = ot_err_set(j->err, OT_ERR_NOMEM, "%s: out of memory for libpng", j->path);
        return false;
    }
    j->info = png_create_info_struct(j->png);
    if (!j->info) {
        j->st = ot_err_set(j->err, OT_ERR_NOMEM, "%s: out of memory for libpng", j->path);
        return false;
    }
    png_init_io(j->png, j->f);
    png_read_info(j->png, j->info);
    png_uint_32 w32, h32;
    int depth, color, interlace;
    png_get_IHDR(j->png, j->info, &w32, &h32, &depth, &color, &interlace, NULL, NULL);
    j->st = check_size(j->path, "PNG", h32, w32, j->err);
    if (j->st != OT_OK)
        return false;
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    if (depth == 16)
        png_set_strip_16(j->png); /* the high byte, as PIL's "RGB;16B" */
    if (color & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(j->png);
    int passes = png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    int pc = png_get_channels(j->png, j->info);
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    int h = (int)h32, w = (int)w32;
    if (pc < 1 || pc > 4 || png_get_bit_depth(j->png, j->info) != 8 || rowbytes != (size_t)w * pc) {
        j->st = ot_err_set(j->err, OT_ERR_INTERNAL, "%s: libpng gave %d channels of %d bits",
                           j->path, pc, png_get_bit_depth(j->png, j->info));
        return false;
    }
    int C = pc <= 2 ? 1 : 3; /* any alpha left over is dropped below */
    uint8_t *out = j->dest(j->user, h, w, C, j->err);
    if (!out) {
        j->st = j->err->code != OT_OK ? j->err->code : OT_ERR_INTERNAL;
        return false;
    }
    const size_t plane = (size_t)h * w;
    if (passes > 1 || pc != C) {
        /* Adam7 fills rows over seven passes, so the whole image is needed;
           gray lands in out directly. */
        if (pc != 1) {
            j->full = ot_malloc(plane * pc);
            if (!j->full) {
                j->st = ot_err_set(j->err, OT_ERR_NOMEM, "%s: out of memory for %d x %d", j->path,
                                   h, w);
                return false;
            }
        }
        j->rows = ot_malloc((size_t)h * sizeof *j->rows);
        if (!j->rows) {
            j->st = ot_err_set(j->err, OT_ERR_NOMEM, "%s: out of memory", j->path);
            return false;
        }
        uint8_t *base = pc == 1 ? out : j->full;
        for (int y = 0; y < h; y++)
            j->rows[y] = base + (size_t)y * rowbytes;
        png_read_image(j->png, j->rows);
        if (pc != 1)
            for (int y = 0; y < h; y++)
                png_scatter(j->full + (size_t)y * rowbytes, pc, C, w, out + (size_t)y * w, plane);
    } else if (pc == 1) {
        for (int y = 0; y < h; y++)
            png_read_row(j->png, out + (size_t)y * w, NULL);
    } else {
        j->row = ot_malloc(rowbytes);
        if (!j->row) {
            j->st = ot_err_set(j->err, OT_ERR_NOMEM, "%s: out of memory", j->path);
            return false;
        }
        for (int y = 0; y < h; y++) {
            png_read_row(j->png, j->row, NULL);
            png_scatter(j->row, pc, C, w, out + (size_t)y * w, plane);
        }
    }
    /* Not png_read_end: the pixels are complete and their CRCs checked; PIL
       does not read the chunks after the image data either. */
    j->img->data = out;
    j->img->height = h;
    j->img->width = w;
    j->img->channels = C;
    return true;
}

static ot_status decode_png(const char *path, FILE *f, ot_data_dest_fn dest, void *user,
                            ot_image *img, ot_err *err)
{
    ot_status st = OT_OK;
    png_job *j = ot_calloc(1, sizeof *j);
    if (!j)
        return ot_err_set(err, OT_ERR_NOMEM, "%s: out of memory", path);
    *j = (png_job){.path = path, .f = f, .dest = dest, .user = user, .img = img, .err = err};
    if (!png_run(j)) {
        if (j->st != OT_OK)
            st = j->st;
        else if (strstr(j->msg, "Out of memory") || strstr(j->msg, "out of memory"))
            st = ot_err_set(err, OT_ERR_NOMEM, "%s: PNG: %s", path, j->msg);
        else
            st = ot_err_set(err, OT_ERR_PARSE, "%s: corrupt PNG: %s", path, j->msg);
    }
    if (j->png)
        png_destroy_read_struct(&j->png, j->info ? &j->info : NULL, NULL);
    ot_free(j->row);
    ot_free(j->full);
    ot_free(j->rows);
    ot_free(j);
    return st;
}

/* ------------------------------------------------------------------ files */

ot_status ot_data_decode_file(const char *path, ot_data_dest_fn dest, void *user, ot_image *img,
                              ot_err *err)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    ot_status st = OT_OK;
    uint8_t head[8];
    FILE *f = NULL;
    OT_TRY(ot_file_fopen_read(path, &f, NULL, err));
    size_t got = fread(head, 1, sizeof head, f);
    if (got < sizeof head && ferror(f))
        OT_FAIL(err, OT_ERR_IO, "%s: read error", path);
    if (fseek(f, 0, SEEK_SET) != 0)
        OT_FAIL(err, OT_ERR_IO, "%s: cannot seek", path);
    if (got >= 3 && head[0] == 0xff && head[1] == 0xd8 && head[2] == 0xff)
        st = decode_jpeg(path, f, dest, user, img, err);
    else if (got == sizeof head && memcmp(head, png_sig, sizeof png_sig) == 0)
        st = decode_png(path, f, dest, user, img, err);
    else if (got == 0)
        OT_FAIL(err, OT_ERR_PARSE, "%s: empty file, expected a JPEG or PNG image", path);
    else
        OT_FAIL(err, OT_ERR_PARSE,
                "%s: not a JPEG or PNG image (starts %02x %02x %02x; GIF, BMP, WebP and TIFF are "
                "not read)",
                path, head[0], got > 1 ? head[1] : 0, got > 2 ? head[2] : 0);
    if (st == OT_OK && ferror(f))
        OT_FAIL(err, OT_ERR_IO, "%s: read error", path);
done:
    if (f)
        fclose(f);
    return st;
}
