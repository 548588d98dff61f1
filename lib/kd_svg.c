/* kd_svg: axes, ticks, polylines, markers, bars; fixed size 640 x 360. */
#include "kd_svg.h"

#include <math.h>
#include <string.h>

#define W 640.0
#define H 360.0
#define L 70.0   /* left margin */
#define R 170.0  /* right margin (legend) */
#define T 36.0
#define B 50.0

static const char *const COLORS[] = { "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf" };

int kd_xml_escape(kd_buf *b, const char *s)
{
    int r = 0;
    for (; *s && !r; s++) {
        switch (*s) {
        case '<': r = kd_buf_printf(b, "&lt;"); break;
        case '>': r = kd_buf_printf(b, "&gt;"); break;
        case '&': r = kd_buf_printf(b, "&amp;"); break;
        case '"': r = kd_buf_printf(b, "&quot;"); break;
        default: r = kd_buf_append(b, s, 1);
        }
    }
    return r;
}

/* "nice" tick step for a range */
static double nice_step(double range, int want)
{
    double raw = range / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static void header(kd_buf *b, const char *title)
{
    kd_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                     "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                     "<text x=\"%.0f\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", W, H, W, H, L);
    kd_xml_escape(b, title);
    kd_buf_printf(b, "</text>\n");
}

int kd_svg_chart(kd_buf *b, const char *title, const char *xlabel, const char *ylabel, const kd_series *s,
                 int ns, int logx)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (uint32_t i = 0; i < s[k].n; i++) {
            double x = s[k].x ? s[k].x[i] : i + 1, y = s[k].y[i];
            if (!isfinite(x) || !isfinite(y) || (logx && x <= 0)) continue;
            if (logx) x = log10(x);
            x0 = fmin(x0, x); x1 = fmax(x1, x); y0 = fmin(y0, y); y1 = fmax(y1, y);
        }
    header(b, title);
    if (!isfinite(x0)) return kd_buf_printf(b, "<text x=\"%.0f\" y=\"%.0f\">no data</text>\n</svg>\n", L, H / 2);
    if (x1 - x0 < 1e-12) { x0 -= 1; x1 += 1; }
    double xpad = (x1 - x0) * 0.05; /* keep markers off the frame */
    x0 -= xpad; x1 += xpad;
    if (y1 - y0 < 1e-12) { y0 -= fabs(y0) * 0.1 + 1e-3; y1 += fabs(y1) * 0.1 + 1e-3; }
    double pad = (y1 - y0) * 0.08;
    y0 -= pad; y1 += pad;
    double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - ((y) - y0) / (y1 - y0) * ph)
    kd_buf_printf(b, "<g stroke=\"#ccc\" stroke-width=\"1\">\n");
    double ys = nice_step(y1 - y0, 5);
    for (double y = ceil(y0 / ys) * ys; y <= y1; y += ys)
        kd_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, PY(y), L + pw, PY(y));
    kd_buf_printf(b, "</g>\n<g fill=\"#333\">\n");
    for (double y = ceil(y0 / ys) * ys; y <= y1; y += ys)
        kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 6, PY(y) + 4, fabs(y) < ys / 1e6 ? 0 : y);
    double xs = logx ? 1 : nice_step(x1 - x0, 6);
    for (double x = ceil(x0 / xs) * xs; x <= x1 + 1e-9; x += xs)
        kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.6g</text>\n", PX(x), T + ph + 16,
                      logx ? pow(10, x) : x);
    kd_buf_printf(b, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw, ph);
    kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + pw / 2, H - 12);
    kd_xml_escape(b, xlabel);
    kd_buf_printf(b, "</text>\n<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">", T + ph / 2, T + ph / 2);
    kd_xml_escape(b, ylabel);
    kd_buf_printf(b, "</text>\n");
    for (int k = 0; k < ns; k++) {
        const char *c = COLORS[k % 10];
        if (!s[k].points) {
            kd_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
            for (uint32_t i = 0; i < s[k].n; i++) {
                double x = s[k].x ? s[k].x[i] : i + 1, y = s[k].y[i];
                if (!isfinite(x) || !isfinite(y) || (logx && x <= 0)) continue;
                kd_buf_printf(b, "%.1f,%.1f ", PX(logx ? log10(x) : x), PY(y));
            }
            kd_buf_printf(b, "\"/>\n");
        } else {
            for (uint32_t i = 0; i < s[k].n; i++) {
                double x = s[k].x ? s[k].x[i] : i + 1, y = s[k].y[i];
                if (!isfinite(x) || !isfinite(y) || (logx && x <= 0)) continue;
                kd_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" fill-opacity=\"0.8\"/>\n",
                              PX(logx ? log10(x) : x), PY(y), c);
            }
        }
        double ly = T + 14 + 18.0 * k;
        kd_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">",
                      W - R + 12, ly - 6, c, W - R + 32, ly);
        kd_xml_escape(b, s[k].name);
        kd_buf_printf(b, "</text>\n");
    }
#undef PX
#undef PY
    return kd_buf_printf(b, "</svg>\n");
}

int kd_svg_bars(kd_buf *b, const char *title, const char *unit, const char *const *labels, int n,
                const double *v, int nv, const char *const *vnames)
{
    double mx = 0;
    for (int k = 0; k < n * nv; k++) mx = isfinite(v[k]) ? fmax(mx, v[k]) : mx;
    if (mx <= 0) mx = 1;
    header(b, title);
    double left = 150, pw = W - left - 90, row = (H - T - B) / (n ? n : 1), bh = row * 0.8 / (nv ? nv : 1);
    for (int i = 0; i < n; i++) {
        double y = T + row * i;
        kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6, y + row / 2 + 4);
        kd_xml_escape(b, labels[i]);
        kd_buf_printf(b, "</text>\n");
        for (int k = 0; k < nv; k++) {
            double val = v[i * nv + k], w = isfinite(val) ? val / mx * pw : 0;
            kd_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">%.3g</text>\n",
                          left, y + row * 0.1 + bh * k, w, bh * 0.9, COLORS[k % 10], left + w + 4, y + row * 0.1 + bh * k + bh * 0.7, val);
        }
    }
    for (int k = 0; k < nv; k++) {
        kd_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"4\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\">",
                      left + 100.0 * k, H - 18, COLORS[k % 10], left + 100.0 * k + 18, H - 12);
        kd_xml_escape(b, vnames[k]);
        kd_buf_printf(b, " (%s)</text>\n", unit);
    }
    return kd_buf_printf(b, "</svg>\n");
}

int kd_svg_heatmap(kd_buf *b, const char *title, const char *xlabel, const char *ylabel, const char *const *cols,
                   int nc, const char *const *rows, int nr, const double *v)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < nr * nc; k++)
        if (isfinite(v[k])) { lo = fmin(lo, v[k]); hi = fmax(hi, v[k]); }
    if (!(hi > lo)) hi = lo + 1e-9;
    header(b, title);
    double left = 90, top = T + 10, cw = (W - left - 40) / (nc ? nc : 1), ch = (H - top - B) / (nr ? nr : 1);
    for (int r = 0; r < nr; r++) {
        kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", left - 6, top + ch * r + ch / 2 + 4);
        kd_xml_escape(b, rows[r]);
        kd_buf_printf(b, "</text>\n");
        for (int c = 0; c < nc; c++) {
            double x = v[r * nc + c], f = isfinite(x) ? (x - lo) / (hi - lo) : 0;
            /* white (low) to dark blue (high) */
            int red = (int)(255 - f * 224), grn = (int)(255 - f * 166), blu = (int)(255 - f * 75);
            kd_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"rgb(%d,%d,%d)\" stroke=\"white\"/>"
                             "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\">%.4f</text>\n",
                          left + cw * c, top + ch * r, cw, ch, red, grn, blu, left + cw * c + cw / 2, top + ch * r + ch / 2 + 4,
                          f > 0.6 ? "white" : "black", x);
        }
    }
    for (int c = 0; c < nc; c++) {
        kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", left + cw * c + cw / 2, top + ch * nr + 16);
        kd_xml_escape(b, cols[c]);
        kd_buf_printf(b, "</text>\n");
    }
    kd_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", left + (W - left - 40) / 2, H - 10);
    kd_xml_escape(b, xlabel);
    kd_buf_printf(b, "</text>\n<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">",
                  top + ch * nr / 2, top + ch * nr / 2);
    kd_xml_escape(b, ylabel);
    return kd_buf_printf(b, "</text>\n</svg>\n");
}
