/*
 * GVSP sender for the reassembly benchmark (scripts/bench/gige_reassembly.ts): sends `frames`
 * images of width x height at `bpp` bits per pixel as standard-id GVSP packets (leader, payloads
 * of packet_size - 36 bytes, trailer) to host:port, unpaced (rate 0) or paced to `rate` MB/s
 * like a camera on a link of that speed: sendmmsg bursts of at most 64 KiB on a schedule, never
 * more than 1 ms of backlog caught up at once (a sender that fell behind, e.g. descheduled on a
 * loaded machine, sends at the rate again instead of flooding). Prints
 * "sent <frames> <packets> <bytes> <seconds>"; bytes / seconds is the rate achieved.
 *
 * Usage: gvsp_sender HOST PORT PACKET_SIZE WIDTH HEIGHT BPP FRAMES RATE_MBPS
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }

int main(int argc, char **argv) {
  if (argc != 9) {
    fprintf(stderr, "usage: %s HOST PORT PACKET_SIZE WIDTH HEIGHT BPP FRAMES RATE_MBPS\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  int packet_size = atoi(argv[3]);
  uint32_t width = atoi(argv[4]), height = atoi(argv[5]), bpp = atoi(argv[6]);
  int frames = atoi(argv[7]);
  double rate = atof(argv[8]) * 1e6;
  size_t image = (size_t)width * height * bpp / 8;
  size_t per = packet_size - 36;
  size_t n_payload = (image + per - 1) / per;
  size_t n_packets = n_payload + 2;
  uint32_t format = bpp == 8 ? 0x01080001 : 0x01100007;

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = {0};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  inet_pton(AF_INET, host, &to.sin_addr);
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

  uint8_t *pixels = malloc(image);
  for (size_t i = 0; i < image; i++) pixels[i] = (uint8_t)(i * 7);
  uint8_t *buf = calloc(n_packets, packet_size);
  struct mmsghdr *msgs = calloc(n_packets, sizeof *msgs);
  struct iovec *iov = calloc(n_packets, sizeof *iov);
  for (size_t k = 0; k < n_packets; k++) {
    uint8_t *p = buf + k * packet_size;
    size_t len = 8;
    p[5] = k >> 16; p[6] = k >> 8; p[7] = k;
    if (k == 0) {
      p[4] = 1;
      put16(p + 10, 1);
      put32(p + 20, format);
      put32(p + 24, width);
      put32(p + 28, height);
      len = 44;
    } else if (k == n_packets - 1) {
      p[4] = 2;
      put16(p + 10, 1);
      put32(p + 12, height);
      len = 16;
    } else {
      p[4] = 3;
      size_t off = (k - 1) * per;
      size_t n = image - off < per ? image - off : per;
      memcpy(p + 8, pixels + off, n);
      len = 8 + n;
    }
    iov[k].iov_base = p;
    iov[k].iov_len = len;
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
    msgs[k].msg_hdr.msg_name = &to;
    msgs[k].msg_hdr.msg_namelen = sizeof to;
  }
  uint32_t block = 1;
  size_t sent_packets = 0, sent_bytes = 0;
  double start = now();
  double next = start; /* when the next burst is due */
  /* Bursts of at most ~64 KiB, so pacing never overruns a default socket buffer at once. */
  const size_t batch = packet_size >= 65536 ? 1 : 65536 / packet_size;
  for (int f = 0; f < frames; f++) {
    for (size_t k = 0; k < n_packets; k++) put16(buf + k * packet_size + 2, block);
    block = block >= 0xffff ? 1 : block + 1;
    size_t k = 0;
    while (k < n_packets) {
      size_t n = n_packets - k < batch ? n_packets - k : batch;
      if (rate > 0) {
        double t = now();
        double wait = next - t;
        if (wait > 0) {
          struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
          nanosleep(&ts, NULL); /* sleep, not spin: the receiver shares the cores */
        } else if (wait < -0.001) {
          next = t; /* fell behind by more than 1 ms: drop the backlog */
        }
      }
      int r = sendmmsg(fd, msgs + k, n, 0);
      if (r < 0) { perror("sendmmsg"); return 1; }
      size_t burst = 0;
      for (int i = 0; i < r; i++) burst += iov[k + i].iov_len;
      sent_bytes += burst;
      if (rate > 0) next += (double)burst / rate;
      sent_packets += r;
      k += r;
    }
  }
  printf("sent %d %zu %zu %.6f\n", frames, sent_packets, sent_bytes, now() - start);
  return 0;
}
