/*
 * tiny-notebook: a small "notebook-like" HTTP/1.1 + WebSocket server for nbpool tests.
 *
 * Build: gcc -O2 -static -pthread -o tiny-notebook server.c
 *
 * Flags (each also as --flag=value; env fallback in brackets):
 *   --ip A               listen address, IPv4 or IPv6 (default 0.0.0.0)   [TINY_IP]
 *   --port N             listen port, 0 = any free port (default 8888)   [TINY_PORT]
 *   --base-url P         URL prefix, normalised to /.../ (default /)      [TINY_BASE_URL]
 *   --token T            require this token under the base URL            [TINY_TOKEN, JUPYTER_TOKEN]
 *   --start-delay-ms N   sleep N ms before listening                      [TINY_START_DELAY_MS]
 *   --exit-after-ms N    exit with code 3 N ms after start (0 = never)    [TINY_EXIT_AFTER_MS]
 *   --never-listen       never listen, just sleep                         [TINY_NEVER_LISTEN=1]
 *   --hang               listen and accept, but never answer              [TINY_HANG=1]
 * (Through Docker's userland proxy a --never-listen container's published port accepts
 *  and then resets at once; --hang is what makes a probe time out.)
 * Jupyter spellings --NotebookApp.{ip,port,base_url,token} and --ServerApp.{...} are
 * accepted too (values quoted as '' or "" are unquoted like traitlets does);
 * --allow-root and --no-browser are accepted and ignored; other flags are ignored
 * with a warning.
 *
 * Routes ({base} is the base URL):
 *   outside {base}            404 text
 *   GET {base}api             {"version":"tiny-1"}                 (no token needed)
 *   GET {base}api/whoami      {"hostname","base_url","path","token_ok","started_ms"} (no token needed)
 *   GET {base}api/slow?ms=N   waits N ms, then 200 {"slept_ms":N}
 *   GET {base}api/drip?chunks=N&ms=M   chunked body, N chunks M ms apart
 *   POST/PUT/PATCH {base}...  {"received":N} (N = body bytes; Content-Length or chunked)
 *   GET {base}... + Upgrade: websocket   RFC 6455 echo server
 *   GET {base}...             small HTML page (<title>tiny</title>)
 * With a token set, everything under {base} except api and api/whoami needs the token:
 * ?token=T, "Authorization: token T" (or Bearer), or cookie tiny_token=T (set by a
 * successful ?token=T request); otherwise 403.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define TINY_VERSION "tiny-1"
#define MAX_HEAD (64 * 1024)           /* request line + headers */
#define MAX_LINE 8192                  /* chunk-size / trailer lines */
#define MAX_WS_MESSAGE (64u << 20)     /* 64 MiB per WebSocket message */
#define IDLE_TIMEOUT_MS (300 * 1000)   /* keep-alive idle / slow client limit */
#define LINGER_MS 1000                 /* drain time after our FIN */
#define THREAD_STACK (256 * 1024)

/* ------------------------------------------------------------------ options */

static struct {
  char ip[64];
  int port;
  char *base;
  char *token;
  long start_delay_ms;
  long exit_after_ms;
  int never_listen;
  int hang;
} opt;

static char g_hostname[256] = "unknown";
static struct timespec g_t0;
static long g_started_ms = -1;

static long ms_since_start(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long)((now.tv_sec - g_t0.tv_sec) * 1000 + (now.tv_nsec - g_t0.tv_nsec) / 1000000);
}

static void sleep_ms(long ms) {
  if (ms <= 0) return;
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void logf_(const char *fmt, ...) {
  char buf[1024];
  int n = snprintf(buf, sizeof buf, "tiny-notebook: ");
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
  buf[n++] = '\n';
  ssize_t w = write(2, buf, (size_t)n);
  (void)w;
}

static void die(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  logf_("error: %s", buf);
  exit(2);
}

/* Strip one pair of matching surrounding quotes, like traitlets does for '' and "". */
static char *unquote(const char *v) {
  size_t n = strlen(v);
  if (n >= 2 && (v[0] == '\'' || v[0] == '"') && v[n - 1] == v[0]) return strndup(v + 1, n - 2);
  return strdup(v);
}

static long parse_long(const char *name, const char *v, long lo, long hi) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) die("bad value for %s: '%s'", name, v);
  return x;
}

static int parse_bool(const char *v) {
  return !(strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
           strcasecmp(v, "off") == 0);
}

/* Normalise a base URL: leading and trailing slash, no repeated slashes. */
static char *normalise_base(const char *in) {
  size_t n = strlen(in);
  char *out = malloc(n + 3);
  size_t j = 0;
  out[j++] = '/';
  for (size_t i = 0; i < n; i++) {
    if (in[i] == '/' && out[j - 1] == '/') continue;
    out[j++] = in[i];
  }
  if (out[j - 1] != '/') out[j++] = '/';
  out[j] = 0;
  return out;
}

enum { O_IP, O_PORT, O_BASE, O_TOKEN, O_DELAY, O_EXIT, O_NEVER, O_HANG, O_NOOP, O_HELP };
static const struct {
  const char *name;
  int id;
  int takes_value;
} optdefs[] = {
    {"ip", O_IP, 1},
    {"NotebookApp.ip", O_IP, 1},
    {"ServerApp.ip", O_IP, 1},
    {"port", O_PORT, 1},
    {"NotebookApp.port", O_PORT, 1},
    {"ServerApp.port", O_PORT, 1},
    {"base-url", O_BASE, 1},
    {"base_url", O_BASE, 1},
    {"NotebookApp.base_url", O_BASE, 1},
    {"ServerApp.base_url", O_BASE, 1},
    {"token", O_TOKEN, 1},
    {"NotebookApp.token", O_TOKEN, 1},
    {"ServerApp.token", O_TOKEN, 1},
    {"IdentityProvider.token", O_TOKEN, 1},
    {"start-delay-ms", O_DELAY, 1},
    {"exit-after-ms", O_EXIT, 1},
    {"never-listen", O_NEVER, 0},
    {"hang", O_HANG, 0},
    {"allow-root", O_NOOP, 0},
    {"no-browser", O_NOOP, 0},
    {"help", O_HELP, 0},
};

static void set_opt(int id, const char *name, const char *raw) {
  char *v = unquote(raw);
  switch (id) {
    case O_IP:
      if (strlen(v) >= sizeof opt.ip) die("bad value for %s: '%s'", name, v);
      strcpy(opt.ip, v);
      break;
    case O_PORT: opt.port = (int)parse_long(name, v, 0, 65535); break;
    case O_BASE: free(opt.base); opt.base = normalise_base(v); break;
    case O_TOKEN: free(opt.token); opt.token = strdup(v); break;
    case O_DELAY: opt.start_delay_ms = parse_long(name, v, 0, 86400000L); break;
    case O_EXIT: opt.exit_after_ms = parse_long(name, v, 0, 86400000L); break;
    case O_NEVER: opt.never_listen = parse_bool(v); break;
    case O_HANG: opt.hang = parse_bool(v); break;
    default: break;
  }
  free(v);
}

static void usage(void) {
  fprintf(stderr,
          "usage: tiny-notebook [--ip A] [--port N] [--base-url /p/] [--token T]\n"
          "                     [--start-delay-ms N] [--exit-after-ms N] [--never-listen] [--hang]\n"
          "  also --NotebookApp.{ip,port,base_url,token}=X; env TINY_IP, TINY_PORT,\n"
          "  TINY_BASE_URL, TINY_TOKEN (or JUPYTER_TOKEN), TINY_START_DELAY_MS,\n"
          "  TINY_EXIT_AFTER_MS, TINY_NEVER_LISTEN, TINY_HANG\n");
}

static void parse_args(int argc, char **argv) {
  strcpy(opt.ip, "0.0.0.0");
  opt.port = 8888;
  opt.base = normalise_base("/");
  opt.token = strdup("");
  const char *e;
  if ((e = getenv("TINY_IP")) && *e) set_opt(O_IP, "TINY_IP", e);
  if ((e = getenv("TINY_PORT")) && *e) set_opt(O_PORT, "TINY_PORT", e);
  if ((e = getenv("TINY_BASE_URL")) && *e) set_opt(O_BASE, "TINY_BASE_URL", e);
  if ((e = getenv("JUPYTER_TOKEN"))) set_opt(O_TOKEN, "JUPYTER_TOKEN", e);
  if ((e = getenv("TINY_TOKEN"))) set_opt(O_TOKEN, "TINY_TOKEN", e);
  if ((e = getenv("TINY_START_DELAY_MS")) && *e) set_opt(O_DELAY, "TINY_START_DELAY_MS", e);
  if ((e = getenv("TINY_EXIT_AFTER_MS")) && *e) set_opt(O_EXIT, "TINY_EXIT_AFTER_MS", e);
  if ((e = getenv("TINY_NEVER_LISTEN")) && *e) set_opt(O_NEVER, "TINY_NEVER_LISTEN", e);
  if ((e = getenv("TINY_HANG")) && *e) set_opt(O_HANG, "TINY_HANG", e);

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strncmp(a, "--", 2) != 0 && !(a[0] == '-' && a[1] && a[1] != '-')) {
      logf_("warning: ignoring argument '%s'", a);
      continue;
    }
    const char *name = a + (a[1] == '-' ? 2 : 1);
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    int found = -1;
    for (size_t k = 0; k < sizeof optdefs / sizeof optdefs[0]; k++) {
      if (strlen(optdefs[k].name) == nlen && strncmp(optdefs[k].name, name, nlen) == 0) {
        found = (int)k;
        break;
      }
    }
    if (found < 0) {
      logf_("warning: ignoring unknown flag '%s'", a);
      continue;
    }
    int id = optdefs[found].id;
    if (id == O_HELP) {
      usage();
      exit(0);
    }
    if (optdefs[found].takes_value) {
      const char *v;
      if (eq) {
        v = eq + 1;
      } else if (i + 1 < argc) {
        v = argv[++i];
      } else {
        die("flag %s needs a value", a);
        return;
      }
      set_opt(id, optdefs[found].name, v);
    } else {
      set_opt(id, optdefs[found].name, eq ? eq + 1 : "1");
    }
  }
}

/* ------------------------------------------------------------------ SHA-1 / base64 */

typedef struct {
  uint32_t h[5];
  uint64_t len;
  uint8_t buf[64];
  size_t n;
} sha1_ctx;

#define ROL(x, c) (((x) << (c)) | ((x) >> (32 - (c))))

static void sha1_block(sha1_ctx *s, const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
           p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    uint32_t t = ROL(a, 5) + f + e + k + w[i];
    e = d;
    d = c;
    c = ROL(b, 30);
    b = a;
    a = t;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
}

static void sha1_init(sha1_ctx *s) {
  s->h[0] = 0x67452301;
  s->h[1] = 0xEFCDAB89;
  s->h[2] = 0x98BADCFE;
  s->h[3] = 0x10325476;
  s->h[4] = 0xC3D2E1F0;
  s->len = 0;
  s->n = 0;
}

static void sha1_update(sha1_ctx *s, const void *data, size_t len) {
  const uint8_t *p = data;
  s->len += len;
  while (len) {
    size_t take = 64 - s->n < len ? 64 - s->n : len;
    memcpy(s->buf + s->n, p, take);
    s->n += take;
    p += take;
    len -= take;
    if (s->n == 64) {
      sha1_block(s, s->buf);
      s->n = 0;
    }
  }
}

static void sha1_final(sha1_ctx *s, uint8_t out[20]) {
  uint64_t bits = s->len * 8;
  uint8_t pad = 0x80;
  sha1_update(s, &pad, 1);
  pad = 0;
  while (s->n != 56) sha1_update(s, &pad, 1);
  uint8_t lb[8];
  for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_update(s, lb, 8);
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (uint8_t)(s->h[i] >> 24);
    out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
    out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
    out[4 * i + 3] = (uint8_t)s->h[i];
  }
}

static void base64(const uint8_t *in, size_t n, char *out) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t j = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16;
    if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
    if (i + 2 < n) v |= in[i + 2];
    out[j++] = tbl[(v >> 18) & 63];
    out[j++] = tbl[(v >> 12) & 63];
    out[j++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
    out[j++] = i + 2 < n ? tbl[v & 63] : '=';
  }
  out[j] = 0;
}

/* ------------------------------------------------------------------ buffered connection */

typedef struct {
  int fd;
  char *buf;
  size_t cap, r, w; /* unread data is buf[r..w) */
} conn_t;

/* Read more data into the buffer. Returns bytes read, 0 on EOF, -1 on error/timeout,
 * -2 when the buffer is full (cap reached and nothing consumed). */
static ssize_t conn_fill(conn_t *c, int timeout_ms) {
  if (c->r == c->w) c->r = c->w = 0;
  if (c->w == c->cap) {
    if (c->r > 0) {
      memmove(c->buf, c->buf + c->r, c->w - c->r);
      c->w -= c->r;
      c->r = 0;
    } else if (c->cap < MAX_HEAD + 1024) {
      size_t ncap = c->cap * 2;
      char *nb = realloc(c->buf, ncap);
      if (!nb) return -1;
      c->buf = nb;
      c->cap = ncap;
    } else {
      return -2;
    }
  }
  if (timeout_ms >= 0) {
    struct pollfd p = {c->fd, POLLIN, 0};
    int pr;
    do pr = poll(&p, 1, timeout_ms);
    while (pr < 0 && errno == EINTR);
    if (pr <= 0) return -1;
  }
  ssize_t n;
  do n = recv(c->fd, c->buf + c->w, c->cap - c->w, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) c->w += (size_t)n;
  return n < 0 ? -1 : n;
}

/* Read exactly n bytes into dst (buffered data first, then straight from the socket). */
static int conn_read_exact(conn_t *c, void *dst, size_t n, int timeout_ms) {
  uint8_t *d = dst;
  size_t have = c->w - c->r;
  size_t take = have < n ? have : n;
  memcpy(d, c->buf + c->r, take);
  c->r += take;
  d += take;
  n -= take;
  while (n > 0) {
    if (timeout_ms >= 0) {
      struct pollfd p = {c->fd, POLLIN, 0};
      int pr;
      do pr = poll(&p, 1, timeout_ms);
      while (pr < 0 && errno == EINTR);
      if (pr <= 0) return -1;
    }
    ssize_t k;
    do k = recv(c->fd, d, n, 0);
    while (k < 0 && errno == EINTR);
    if (k <= 0) return -1;
    d += k;
    n -= (size_t)k;
  }
  return 0;
}

/* Discard n bytes. */
static int conn_skip(conn_t *c, unsigned long long n) {
  while (n > 0) {
    if (c->r == c->w) {
      ssize_t k = conn_fill(c, IDLE_TIMEOUT_MS);
      if (k <= 0) return -1;
    }
    size_t have = c->w - c->r;
    size_t take = have < n ? have : (size_t)n;
    c->r += take;
    n -= take;
  }
  return 0;
}

/* Read one line (without CR LF) into out. Returns 0, or -1 on error / too long. */
static int conn_readline(conn_t *c, char *out, size_t outsz) {
  for (;;) {
    char *nl = memchr(c->buf + c->r, '\n', c->w - c->r);
    if (nl) {
      size_t len = (size_t)(nl - (c->buf + c->r));
      size_t l = len;
      if (l > 0 && c->buf[c->r + l - 1] == '\r') l--;
      if (l >= outsz) return -1;
      memcpy(out, c->buf + c->r, l);
      out[l] = 0;
      c->r += len + 1;
      return 0;
    }
    if (c->w - c->r > MAX_LINE) return -1;
    if (conn_fill(c, IDLE_TIMEOUT_MS) <= 0) return -1;
  }
}

static int send_iov(int fd, struct iovec *iov, int cnt) {
  while (cnt > 0) {
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = iov;
    m.msg_iovlen = (size_t)cnt;
    ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    while (cnt > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
    }
  }
  return 0;
}

static int send_all(int fd, const void *p, size_t n) {
  struct iovec v = {(void *)p, n};
  return send_iov(fd, &v, 1);
}

/* Close politely: send FIN, drain what the peer still sends for a moment, then close. */
static void conn_close(conn_t *c) {
  shutdown(c->fd, SHUT_WR);
  char tmp[4096];
  long deadline = ms_since_start() + LINGER_MS;
  for (;;) {
    long left = deadline - ms_since_start();
    if (left <= 0) break;
    struct pollfd p = {c->fd, POLLIN, 0};
    int pr = poll(&p, 1, (int)left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) break;
    ssize_t n = recv(c->fd, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
  }
  close(c->fd);
}

/* ------------------------------------------------------------------ small string helpers */

typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + n + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) abort();
    b->p = np;
    b->cap = nc;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0) sb_addn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
static void sb_json_str(sbuf *b, const char *s) {
  sb_add(b, "\"");
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"') sb_add(b, "\\\"");
    else if (ch == '\\') sb_add(b, "\\\\");
    else if (ch < 0x20) sb_printf(b, "\\u%04x", ch);
    else sb_addn(b, (const char *)&ch, 1);
  }
  sb_add(b, "\"");
}
static void sb_html(sbuf *b, const char *s) {
  for (; *s; s++) {
    switch (*s) {
      case '<': sb_add(b, "&lt;"); break;
      case '>': sb_add(b, "&gt;"); break;
      case '&': sb_add(b, "&amp;"); break;
      case '"': sb_add(b, "&quot;"); break;
      default: sb_addn(b, s, 1);
    }
  }
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
  return s;
}

/* Does a comma-separated header value contain tok (case-insensitive)? */
static int list_has(const char *v, const char *tok) {
  if (!v) return 0;
  size_t tl = strlen(tok);
  const char *p = v;
  while (*p) {
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    const char *s = p;
    while (*p && *p != ',') p++;
    const char *e = p;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0) return 1;
  }
  return 0;
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Find query parameter name; URL-decode its value into out. Returns 1 if present. */
static int query_param(const char *q, const char *name, char *out, size_t outsz) {
  if (!q) return 0;
  size_t nl = strlen(name);
  const char *p = q;
  while (*p) {
    const char *amp = strchr(p, '&');
    const char *end = amp ? amp : p + strlen(p);
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *kend = eq ? eq : end;
    if ((size_t)(kend - p) == nl && strncmp(p, name, nl) == 0) {
      size_t j = 0;
      for (const char *s = eq ? eq + 1 : end; s < end && j + 1 < outsz; s++) {
        if (*s == '+') out[j++] = ' ';
        else if (*s == '%' && s + 2 < end && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
          out[j++] = (char)(hexval(s[1]) * 16 + hexval(s[2]));
          s += 2;
        } else out[j++] = *s;
      }
      out[j] = 0;
      return 1;
    }
    if (!amp) break;
    p = amp + 1;
  }
  return 0;
}

static long query_long(const char *q, const char *name, long dflt, long lo, long hi) {
  char v[32];
  if (!query_param(q, name, v, sizeof v)) return dflt;
  char *end;
  long x = strtol(v, &end, 10);
  if (end == v) return dflt;
  return x < lo ? lo : x > hi ? hi : x;
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
  char *head; /* private copy of the request head */
  char *method, *target, *path, *query;
  int minor; /* HTTP/1.minor */
  char *h_connection, *h_upgrade, *h_ws_key, *h_ws_version, *h_ws_protocol, *h_auth, *h_cookie,
      *h_content_length, *h_transfer_encoding, *h_expect;
  int keep_alive;
  int is_head;
  long long body_len;
  int token_from_query;
} req_t;

static const char *reason(int status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

/* Send a complete response. keep: whether the connection stays open afterwards. */
static int send_response(conn_t *c, const req_t *q, int status, const char *ctype, const char *body,
                         size_t blen, const char *extra, int keep) {
  char head[2048];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nServer: tiny-notebook\r\nContent-Type: %s\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: %s\r\n%s\r\n",
                   status, reason(status), ctype, blen, keep ? "keep-alive" : "close",
                   extra ? extra : "");
  if (n < 0 || n >= (int)sizeof head) return -1;
  struct iovec v[2] = {{head, (size_t)n}, {(void *)body, blen}};
  int cnt = (q && q->is_head) || blen == 0 ? 1 : 2;
  return send_iov(c->fd, v, cnt);
}

static int send_text(conn_t *c, const req_t *q, int status, const char *text, int keep) {
  return send_response(c, q, status, "text/plain; charset=utf-8", text, strlen(text), NULL, keep);
}

/* Find the end of the request head in buf[from..to): index just past the blank line, or 0. */
static size_t find_head_end(const char *buf, size_t from, size_t to) {
  for (size_t i = from; i < to; i++) {
    if (buf[i] != '\n') continue;
    if (i + 1 < to && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < to && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return 0;
}

/* Read and parse one request head. Returns 1 ok, 0 clean EOF/timeout, -1 error (already
 * answered or connection broken). */
static int read_request(conn_t *c, req_t *q) {
  memset(q, 0, sizeof *q);
  /* Ignore empty lines before a request (RFC 9112 2.2). */
  for (;;) {
    while (c->r < c->w && (c->buf[c->r] == '\r' || c->buf[c->r] == '\n')) c->r++;
    if (c->r < c->w) break;
    ssize_t k = conn_fill(c, IDLE_TIMEOUT_MS);
    if (k <= 0) return 0;
  }
  size_t end;
  for (;;) {
    end = find_head_end(c->buf, c->r, c->w);
    if (end) break;
    ssize_t k = c->w - c->r > MAX_HEAD ? -2 : conn_fill(c, IDLE_TIMEOUT_MS);
    if (k == -2) {
      send_text(c, NULL, 431, "431 Request Header Fields Too Large\n", 0);
      return -1;
    }
    if (k <= 0) return -1;
  }
  size_t hl = end - c->r;
  q->head = malloc(hl + 1);
  if (!q->head) return -1;
  memcpy(q->head, c->buf + c->r, hl);
  q->head[hl] = 0;
  c->r = end;

  /* request line */
  char *save = NULL;
  char *line = strtok_r(q->head, "\n", &save);
  if (!line) return -1;
  line = trim(line);
  char *sp1 = strchr(line, ' ');
  char *sp2 = sp1 ? strrchr(line, ' ') : NULL;
  if (!sp1 || sp2 == sp1) {
    send_text(c, NULL, 400, "400 Bad Request\n", 0);
    return -1;
  }
  *sp1 = 0;
  *sp2 = 0;
  q->method = line;
  q->target = trim(sp1 + 1);
  const char *ver = sp2 + 1;
  if (strncmp(ver, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)ver[7]) || ver[8]) {
    send_text(c, NULL, strncmp(ver, "HTTP/", 5) == 0 ? 505 : 400, "bad HTTP version\n", 0);
    return -1;
  }
  q->minor = ver[7] - '0';
  q->is_head = strcmp(q->method, "HEAD") == 0;

  /* headers */
  while ((line = strtok_r(NULL, "\n", &save))) {
    char *colon = strchr(line, ':');
    if (!colon) {
      if (*trim(line) == 0) continue;
      send_text(c, NULL, 400, "400 Bad Request (header line)\n", 0);
      return -1;
    }
    *colon = 0;
    char *name = line;
    char *val = trim(colon + 1);
    if (!strcasecmp(name, "connection")) q->h_connection = val;
    else if (!strcasecmp(name, "upgrade")) q->h_upgrade = val;
    else if (!strcasecmp(name, "sec-websocket-key")) q->h_ws_key = val;
    else if (!strcasecmp(name, "sec-websocket-version")) q->h_ws_version = val;
    else if (!strcasecmp(name, "sec-websocket-protocol")) { if (!q->h_ws_protocol) q->h_ws_protocol = val; }
    else if (!strcasecmp(name, "authorization")) q->h_auth = val;
    else if (!strcasecmp(name, "cookie")) { if (!q->h_cookie) q->h_cookie = val; }
    else if (!strcasecmp(name, "content-length")) {
      if (q->h_content_length && strcmp(q->h_content_length, val) != 0) {
        send_text(c, NULL, 400, "400 Bad Request (conflicting Content-Length)\n", 0);
        return -1;
      }
      q->h_content_length = val;
    } else if (!strcasecmp(name, "transfer-encoding")) q->h_transfer_encoding = val;
    else if (!strcasecmp(name, "expect")) q->h_expect = val;
  }

  /* target -> path + query */
  char *t = q->target;
  if (!strncasecmp(t, "http://", 7) || !strncasecmp(t, "https://", 8)) {
    char *s = strstr(t, "://") + 3;
    char *slash = strchr(s, '/');
    t = slash ? slash : (char *)"/";
  }
  char *hash = strchr(t, '#');
  if (hash) *hash = 0;
  char *qm = strchr(t, '?');
  if (qm) {
    *qm = 0;
    q->query = qm + 1;
  }
  q->path = t;

  if (q->minor >= 1) q->keep_alive = !list_has(q->h_connection, "close");
  else q->keep_alive = list_has(q->h_connection, "keep-alive");
  return 1;
}

/* Consume the request body, counting its bytes. Returns 0 ok, -1 on error (connection dead
 * or already answered). */
static int read_body(conn_t *c, req_t *q) {
  q->body_len = 0;
  int chunked = 0;
  long long cl = -1;
  if (q->h_transfer_encoding) {
    if (!list_has(q->h_transfer_encoding, "chunked")) {
      send_text(c, q, 501, "501 unsupported Transfer-Encoding\n", 0);
      return -1;
    }
    chunked = 1;
  } else if (q->h_content_length) {
    const char *s = q->h_content_length;
    if (!*s) goto bad;
    cl = 0;
    for (; *s; s++) {
      if (!isdigit((unsigned char)*s) || cl > (1LL << 50)) goto bad;
      cl = cl * 10 + (*s - '0');
    }
  }
  if ((chunked || cl > 0) && q->minor >= 1 && q->h_expect && !strcasecmp(q->h_expect, "100-continue")) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (send_all(c->fd, cont, sizeof cont - 1) < 0) return -1;
  }
  if (!chunked) {
    if (cl > 0) {
      if (conn_skip(c, (unsigned long long)cl) < 0) return -1;
      q->body_len = cl;
    }
    return 0;
  }
  char line[MAX_LINE];
  for (;;) {
    if (conn_readline(c, line, sizeof line) < 0) goto bad_or_dead;
    char *end;
    errno = 0;
    unsigned long long sz = strtoull(line, &end, 16);
    if (end == line || errno || (*end && *end != ';' && *end != ' ' && *end != '\t')) goto bad;
    if (sz == 0) break;
    if (conn_skip(c, sz) < 0) return -1;
    q->body_len += (long long)sz;
    if (conn_readline(c, line, sizeof line) < 0) goto bad_or_dead;
    if (line[0]) goto bad;
  }
  /* trailers */
  for (;;) {
    if (conn_readline(c, line, sizeof line) < 0) goto bad_or_dead;
    if (!line[0]) break;
  }
  return 0;
bad:
  send_text(c, q, 400, "400 Bad Request (body framing)\n", 0);
  return -1;
bad_or_dead:
  return -1;
}

static int token_ok(const req_t *q, int *from_query) {
  *from_query = 0;
  const char *tok = opt.token;
  if (!tok[0]) return 1;
  char v[1024];
  if (query_param(q->query, "token", v, sizeof v) && strcmp(v, tok) == 0) {
    *from_query = 1;
    return 1;
  }
  if (q->h_auth) {
    const char *a = q->h_auth;
    const char *sp = strchr(a, ' ');
    if (sp && ((sp - a == 5 && !strncasecmp(a, "token", 5)) || (sp - a == 6 && !strncasecmp(a, "bearer", 6)))) {
      while (*sp == ' ') sp++;
      if (strcmp(sp, tok) == 0) return 1;
    }
  }
  if (q->h_cookie) {
    const char *p = q->h_cookie;
    size_t tl = strlen(tok);
    while (*p) {
      while (*p == ' ' || *p == ';') p++;
      const char *end = strchr(p, ';');
      if (!end) end = p + strlen(p);
      if (!strncmp(p, "tiny_token=", 11) && (size_t)(end - p - 11) == tl && !strncmp(p + 11, tok, tl)) return 1;
      p = end;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ WebSocket */

static int ws_send_frame(int fd, int opcode, const void *payload, uint64_t len) {
  uint8_t h[10];
  size_t hl;
  h[0] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    h[1] = (uint8_t)len;
    hl = 2;
  } else if (len < 65536) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    hl = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    hl = 10;
  }
  struct iovec v[2] = {{h, hl}, {(void *)payload, (size_t)len}};
  return send_iov(fd, v, len ? 2 : 1);
}

static void ws_send_close(int fd, uint16_t code) {
  uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  ws_send_frame(fd, 8, p, 2);
}

static void unmask(uint8_t *p, uint64_t n, const uint8_t key[4]) {
  uint64_t k64;
  uint8_t kb[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  memcpy(&k64, kb, 8);
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, p + i, 8);
    x ^= k64;
    memcpy(p + i, &x, 8);
  }
  for (; i < n; i++) p[i] ^= key[i & 3];
}

static int utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + need >= n) return 0; /* truncated sequence */
    for (size_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += need + 1;
  }
  return 1;
}

/* Echo loop after the 101 response. Always closes the connection. */
static void ws_loop(conn_t *c) {
  uint8_t *msg = NULL;
  size_t msg_len = 0, msg_cap = 0;
  int msg_op = 0; /* opcode of the message being assembled, 0 = none */
  uint16_t close_code = 0;
  for (;;) {
    uint8_t h[8];
    if (conn_read_exact(c, h, 2, -1) < 0) goto dead;
    int fin = h[0] & 0x80, rsv = h[0] & 0x70, op = h[0] & 0x0F;
    int masked = h[1] & 0x80;
    uint64_t len = h[1] & 0x7F;
    if (len == 126) {
      if (conn_read_exact(c, h, 2, IDLE_TIMEOUT_MS) < 0) goto dead;
      len = (uint64_t)h[0] << 8 | h[1];
    } else if (len == 127) {
      if (conn_read_exact(c, h, 8, IDLE_TIMEOUT_MS) < 0) goto dead;
      len = 0;
      for (int i = 0; i < 8; i++) len = len << 8 | h[i];
      if (len >> 63) { close_code = 1002; goto fail; }
    }
    uint8_t key[4] = {0, 0, 0, 0};
    if (masked && conn_read_exact(c, key, 4, IDLE_TIMEOUT_MS) < 0) goto dead;
    if (rsv || !masked) { close_code = 1002; goto fail; }

    if (op & 0x8) { /* control frame */
      uint8_t p[125];
      if (!fin || len > 125) { close_code = 1002; goto fail; }
      if (conn_read_exact(c, p, (size_t)len, IDLE_TIMEOUT_MS) < 0) goto dead;
      unmask(p, len, key);
      if (op == 0x8) { /* close: answer with the same code, then close TCP */
        if (len == 1) { close_code = 1002; goto fail; }
        if (len >= 2) ws_send_frame(c->fd, 8, p, 2);
        else ws_send_frame(c->fd, 8, NULL, 0);
        goto closed;
      } else if (op == 0x9) {
        if (ws_send_frame(c->fd, 0xA, p, len) < 0) goto dead;
      } else if (op == 0xA) {
        /* unsolicited pong: ignore */
      } else {
        close_code = 1002;
        goto fail;
      }
      continue;
    }

    /* data frame */
    if (op == 0) {
      if (!msg_op) { close_code = 1002; goto fail; }
    } else if (op == 1 || op == 2) {
      if (msg_op) { close_code = 1002; goto fail; }
      msg_op = op;
      msg_len = 0;
    } else {
      close_code = 1002;
      goto fail;
    }
    if (len > MAX_WS_MESSAGE || msg_len + len > MAX_WS_MESSAGE) { close_code = 1009; goto fail; }
    if (msg_len + len > msg_cap) {
      size_t nc = msg_cap ? msg_cap : 4096;
      while (nc < msg_len + len) nc *= 2;
      uint8_t *nm = realloc(msg, nc);
      if (!nm) { close_code = 1011; goto fail; }
      msg = nm;
      msg_cap = nc;
    }
    if (len && conn_read_exact(c, msg + msg_len, (size_t)len, IDLE_TIMEOUT_MS) < 0) goto dead;
    unmask(msg + msg_len, len, key);
    msg_len += (size_t)len;
    if (fin) {
      if (msg_op == 1 && !utf8_valid(msg, msg_len)) { close_code = 1007; goto fail; }
      if (ws_send_frame(c->fd, msg_op, msg, msg_len) < 0) goto dead;
      msg_op = 0;
      if (msg_cap > (1u << 20)) { /* don't keep big buffers around */
        free(msg);
        msg = NULL;
        msg_cap = 0;
      }
    }
  }
fail:
  ws_send_close(c->fd, close_code);
closed:
  free(msg);
  conn_close(c);
  return;
dead:
  free(msg);
  close(c->fd);
}

static int handle_websocket(conn_t *c, req_t *q) {
  if (strcmp(q->method, "GET") != 0 || q->minor < 1) {
    send_text(c, q, 400, "400 WebSocket upgrade needs GET and HTTP/1.1\n", 0);
    return -1;
  }
  if (!q->h_ws_version || strcmp(q->h_ws_version, "13") != 0) {
    send_response(c, q, 426, "text/plain; charset=utf-8", "426 WebSocket version 13 required\n",
                  strlen("426 WebSocket version 13 required\n"),
                  "Sec-WebSocket-Version: 13\r\n", 0);
    return -1;
  }
  if (!q->h_ws_key || !*q->h_ws_key || strlen(q->h_ws_key) > 128) {
    send_text(c, q, 400, "400 missing Sec-WebSocket-Key\n", 0);
    return -1;
  }
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  sha1_ctx s;
  uint8_t dig[20];
  char acc[32];
  sha1_init(&s);
  sha1_update(&s, q->h_ws_key, strlen(q->h_ws_key));
  sha1_update(&s, guid, sizeof guid - 1);
  sha1_final(&s, dig);
  base64(dig, 20, acc);

  char proto[256] = "";
  if (q->h_ws_protocol) { /* select the first offered subprotocol */
    const char *p = q->h_ws_protocol;
    size_t n = strcspn(p, ", \t");
    if (n > 0 && n < 200) snprintf(proto, sizeof proto, "Sec-WebSocket-Protocol: %.*s\r\n", (int)n, p);
  }
  char resp[512];
  int n = snprintf(resp, sizeof resp,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: %s\r\n%sServer: tiny-notebook\r\n\r\n",
                   acc, proto);
  if (send_all(c->fd, resp, (size_t)n) < 0) {
    close(c->fd);
    return 1;
  }
  ws_loop(c);
  return 1; /* connection handled and closed */
}

/* ------------------------------------------------------------------ routes */

static int handle_drip(conn_t *c, req_t *q) {
  long chunks = query_long(q->query, "chunks", 5, 0, 1000000);
  long ms = query_long(q->query, "ms", 200, 0, 600000);
  int chunked = q->minor >= 1;
  int keep = chunked && q->keep_alive;
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nServer: tiny-notebook\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n%sConnection: %s\r\n\r\n",
                   chunked ? "Transfer-Encoding: chunked\r\n" : "", keep ? "keep-alive" : "close");
  if (send_all(c->fd, head, (size_t)n) < 0) return -1;
  if (q->is_head) return keep;
  for (long i = 0; i < chunks; i++) {
    if (i > 0) sleep_ms(ms);
    char data[64], frame[96];
    int dl = snprintf(data, sizeof data, "chunk %ld of %ld\n", i + 1, chunks);
    int fl = chunked ? snprintf(frame, sizeof frame, "%x\r\n%s\r\n", dl, data)
                     : snprintf(frame, sizeof frame, "%s", data);
    if (send_all(c->fd, frame, (size_t)fl) < 0) return -1;
  }
  if (chunked && send_all(c->fd, "0\r\n\r\n", 5) < 0) return -1;
  return keep;
}

/* Handle one request. Returns 1 to keep the connection, 0 to close it politely,
 * -1 when the connection is broken (close at once), 2 when it was handed off and closed. */
static int handle_request(conn_t *c, req_t *q) {
  const char *base = opt.base;
  size_t bl = strlen(base);
  int under = strncmp(q->path, base, bl) == 0;
  int is_ws = q->h_upgrade && list_has(q->h_upgrade, "websocket");

  /* The body must be consumed to keep the connection in sync (not for upgrades). */
  if (!is_ws && read_body(c, q) < 0) return -1;

  int keep = q->keep_alive;
  if (!under) {
    /* {base} without its trailing slash: redirect like a web app would. */
    if (bl > 1 && strlen(q->path) == bl - 1 && strncmp(q->path, base, bl - 1) == 0) {
      sbuf loc = {0};
      sb_add(&loc, "Location: ");
      sb_add(&loc, base);
      if (q->query) {
        sb_add(&loc, "?");
        sb_add(&loc, q->query);
      }
      sb_add(&loc, "\r\n");
      int r = send_response(c, q, 302, "text/plain; charset=utf-8", "", 0, loc.p, keep);
      free(loc.p);
      return r < 0 ? -1 : keep;
    }
    return send_text(c, q, 404, "404 Not Found\n", keep) < 0 ? -1 : keep;
  }
  const char *rel = q->path + bl;
  int from_query = 0;
  int tok_ok = token_ok(q, &from_query);
  int open_route = !strcmp(rel, "api") || !strcmp(rel, "api/") || !strcmp(rel, "api/whoami");
  if (!tok_ok && !open_route) {
    if (is_ws) keep = 0;
    return send_text(c, q, 403, "403 Forbidden: missing or wrong token\n", keep) < 0 ? -1 : keep;
  }
  char cookie[1400] = "";
  if (from_query && opt.token[0] && strlen(opt.token) < 1000 && strlen(base) < 256)
    snprintf(cookie, sizeof cookie, "Set-Cookie: tiny_token=%s; Path=%s; HttpOnly; SameSite=Lax\r\n",
             opt.token, base);

  if (is_ws) return handle_websocket(c, q) < 0 ? 0 : 2;

  const char *m = q->method;
  int get = !strcmp(m, "GET") || q->is_head;
  if (!strcmp(m, "POST") || !strcmp(m, "PUT") || !strcmp(m, "PATCH")) {
    char body[64];
    int n = snprintf(body, sizeof body, "{\"received\": %lld}", q->body_len);
    return send_response(c, q, 200, "application/json", body, (size_t)n, cookie, keep) < 0 ? -1 : keep;
  }
  if (!get) {
    return send_response(c, q, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n",
                         strlen("405 Method Not Allowed\n"),
                         "Allow: GET, HEAD, POST, PUT, PATCH\r\n", keep) < 0 ? -1 : keep;
  }
  if (!strcmp(rel, "api") || !strcmp(rel, "api/")) {
    static const char body[] = "{\"version\": \"" TINY_VERSION "\"}";
    return send_response(c, q, 200, "application/json", body, sizeof body - 1, cookie, keep) < 0 ? -1 : keep;
  }
  if (!strcmp(rel, "api/whoami")) {
    sbuf b = {0};
    sb_add(&b, "{\"hostname\": ");
    sb_json_str(&b, g_hostname);
    sb_add(&b, ", \"base_url\": ");
    sb_json_str(&b, base);
    sb_add(&b, ", \"path\": ");
    sb_json_str(&b, q->path);
    sb_printf(&b, ", \"token_ok\": %s, \"started_ms\": %ld, \"version\": \"" TINY_VERSION "\"}",
              tok_ok ? "true" : "false", g_started_ms);
    int r = send_response(c, q, 200, "application/json", b.p, b.len, cookie, keep);
    free(b.p);
    return r < 0 ? -1 : keep;
  }
  if (!strcmp(rel, "api/slow")) {
    long ms = query_long(q->query, "ms", 0, 0, 600000);
    sleep_ms(ms);
    char body[64];
    int n = snprintf(body, sizeof body, "{\"slept_ms\": %ld}", ms);
    return send_response(c, q, 200, "application/json", body, (size_t)n, cookie, keep) < 0 ? -1 : keep;
  }
  if (!strcmp(rel, "api/drip")) return handle_drip(c, q);

  sbuf b = {0};
  sb_add(&b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>tiny</title></head>\n<body>"
             "<h1>tiny notebook</h1>\n<p>hostname: <span id=\"hostname\">");
  sb_html(&b, g_hostname);
  sb_add(&b, "</span></p>\n<p>path: <span id=\"path\">");
  sb_html(&b, q->path);
  sb_add(&b, "</span></p>\n</body></html>\n");
  int r = send_response(c, q, 200, "text/html; charset=utf-8", b.p, b.len, cookie, keep);
  free(b.p);
  return r < 0 ? -1 : keep;
}

static void *conn_thread(void *arg) {
  conn_t c = {(int)(intptr_t)arg, NULL, 16384, 0, 0};
  if (opt.hang) { /* read and drop everything, never answer, close when the peer does */
    char tmp[4096];
    ssize_t n;
    while ((n = recv(c.fd, tmp, sizeof tmp, 0)) > 0 || (n < 0 && errno == EINTR)) {
    }
    close(c.fd);
    return NULL;
  }
  c.buf = malloc(c.cap);
  if (!c.buf) {
    close(c.fd);
    return NULL;
  }
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c.fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  for (;;) {
    req_t q;
    int rr = read_request(&c, &q);
    if (rr <= 0) {
      free(q.head);
      if (rr == 0) close(c.fd);
      else conn_close(&c);
      break;
    }
    int r = handle_request(&c, &q);
    free(q.head);
    if (r == 1) continue;
    if (r == 0) conn_close(&c);
    else if (r < 0) close(c.fd);
    break; /* r == 2: the WebSocket code closed it */
  }
  free(c.buf);
  return NULL;
}

/* ------------------------------------------------------------------ main */

static void on_term(int sig) {
  static const char msg[] = "tiny-notebook: terminating on signal\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  _exit(sig == SIGTERM || sig == SIGINT ? 0 : 1);
}

static void *exit_thread(void *arg) {
  (void)arg;
  long left = opt.exit_after_ms - ms_since_start();
  sleep_ms(left);
  logf_("exiting with code 3 after %ld ms (--exit-after-ms)", opt.exit_after_ms);
  _exit(3);
  return NULL;
}

int main(int argc, char **argv) {
  clock_gettime(CLOCK_MONOTONIC, &g_t0);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);

  parse_args(argc, argv);
  if (gethostname(g_hostname, sizeof g_hostname - 1) != 0) strcpy(g_hostname, "unknown");

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, THREAD_STACK);

  if (opt.exit_after_ms > 0) {
    pthread_t t;
    if (pthread_create(&t, &attr, exit_thread, NULL) != 0) die("cannot start exit timer");
  }
  if (opt.never_listen) {
    logf_("pid %d, --never-listen: not listening, sleeping forever", (int)getpid());
    for (;;) pause();
  }
  sleep_ms(opt.start_delay_ms);

  union {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
  } addr;
  memset(&addr, 0, sizeof addr);
  socklen_t alen;
  int family;
  if (inet_pton(AF_INET, strcmp(opt.ip, "localhost") ? opt.ip : "127.0.0.1", &addr.v4.sin_addr) == 1) {
    family = AF_INET;
    addr.v4.sin_family = AF_INET;
    addr.v4.sin_port = htons((uint16_t)opt.port);
    alen = sizeof addr.v4;
  } else {
    const char *ip = opt.ip;
    char tmp[sizeof opt.ip];
    if (!strcmp(ip, "*") || !strcmp(ip, "")) ip = "::";
    if (ip[0] == '[') { /* [::1] */
      memcpy(tmp, ip + 1, strlen(ip));
      char *e = strchr(tmp, ']');
      if (e) *e = 0;
      ip = tmp;
    }
    if (inet_pton(AF_INET6, ip, &addr.v6.sin6_addr) != 1) die("bad --ip '%s' (need a numeric address)", opt.ip);
    family = AF_INET6;
    addr.v6.sin6_family = AF_INET6;
    addr.v6.sin6_port = htons((uint16_t)opt.port);
    alen = sizeof addr.v6;
  }
  int ls = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (ls < 0) die("socket: %s", strerror(errno));
  int one = 1, zero = 0;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) setsockopt(ls, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(ls, (struct sockaddr *)&addr, alen) < 0) die("bind %s:%d: %s", opt.ip, opt.port, strerror(errno));
  if (listen(ls, 4096) < 0) die("listen: %s", strerror(errno));
  socklen_t sl = alen;
  getsockname(ls, (struct sockaddr *)&addr, &sl);
  int port = ntohs(family == AF_INET ? addr.v4.sin_port : addr.v6.sin6_port);
  g_started_ms = ms_since_start();
  logf_("listening on %s:%d base_url=%s token=%s hostname=%s pid=%d started_ms=%ld%s", opt.ip, port, opt.base,
        opt.token[0] ? "set" : "none", g_hostname, (int)getpid(), g_started_ms,
        opt.hang ? " (--hang: never answering)" : "");

  for (;;) {
    int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) sleep_ms(20);
      continue;
    }
    pthread_t t;
    if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)fd) != 0) close(fd);
  }
}
