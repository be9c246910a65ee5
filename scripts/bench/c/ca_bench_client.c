/*
 * Benchmark client for scripts/bench/ca_throughput.ts.
 *
 * Modes (all print one JSON line on stdout):
 *   read    <pv> <seconds>          libca: ca_array_get + ca_pend_io in a loop (whole array)
 *   monitor <pv> <seconds>          libca: one subscription, count updates and bytes
 *   rawpp   <port> <bytes> <seconds>  plain TCP: send 16 bytes, read <bytes>, repeat
 *   rawstream <port> <seconds>      plain TCP: read whatever arrives, count bytes
 *   families <pv>                   libca: read one element as every DBR type 0..34, 37, 38 and
 *                                   print each host-order struct as hex (used by the interop test)
 *
 * Build: gcc -O2 ca_bench_client.c -lca (cadef_min.h declares the libca functions used).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cadef_min.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds (user + system) used by this process so far. */
static double cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec * 1e-6;
}

static long updates = 0;
static double bytes = 0;
static long last_first = 0;

static void on_update(struct event_handler_args args) {
  if (args.status != ECA_NORMAL) return;
  updates++;
  bytes += (double)args.count * 4;
  last_first = ((const int *)args.dbr)[0];
}

static chid connect_pv(const char *name) {
  chid chan;
  int status = ca_context_create(0);
  if (status != ECA_NORMAL) {
    fprintf(stderr, "ca_context_create: %s\n", ca_message(status));
    exit(2);
  }
  ca_create_channel(name, NULL, NULL, 0, &chan);
  status = ca_pend_io(10.0);
  if (status != ECA_NORMAL) {
    fprintf(stderr, "connect %s: %s\n", name, ca_message(status));
    exit(2);
  }
  return chan;
}

static int mode_read(const char *name, double seconds) {
  chid chan = connect_pv(name);
  unsigned long count = ca_element_count(chan);
  int *buffer = malloc(count * sizeof(int));
  long reads = 0;
  double cpu0 = cpu();
  double start = now();
  double end = start + seconds;
  while (now() < end) {
    int status = ca_array_get(DBR_LONG, count, chan, buffer);
    if (status == ECA_NORMAL) status = ca_pend_io(10.0);
    if (status != ECA_NORMAL) {
      fprintf(stderr, "read: %s\n", ca_message(status));
      return 2;
    }
    reads++;
  }
  double elapsed = now() - start;
  printf("{\"reads\":%ld,\"bytes\":%.0f,\"seconds\":%.4f,\"cpu\":%.4f,\"first\":%d}\n", reads,
         (double)reads * count * 4, elapsed, cpu() - cpu0, buffer[0]);
  free(buffer);
  ca_context_destroy();
  return 0;
}

static int mode_monitor(const char *name, double seconds) {
  chid chan = connect_pv(name);
  evid ev;
  unsigned long count = ca_element_count(chan);
  int status = ca_create_subscription(DBR_LONG, count, chan, DBE_VALUE, on_update, NULL, &ev);
  if (status != ECA_NORMAL) {
    fprintf(stderr, "subscribe: %s\n", ca_message(status));
    return 2;
  }
  /* Wait for the first update, then measure. */
  double deadline = now() + 10;
  while (updates == 0 && now() < deadline) ca_pend_event(0.01);
  long base_updates = updates;
  double base_bytes = bytes;
  double cpu0 = cpu();
  double start = now();
  ca_pend_event(seconds);
  double elapsed = now() - start;
  printf("{\"updates\":%ld,\"bytes\":%.0f,\"seconds\":%.4f,\"cpu\":%.4f,\"last\":%ld}\n",
         updates - base_updates, bytes - base_bytes, elapsed, cpu() - cpu0, last_first);
  ca_context_destroy();
  return 0;
}

/* dbr_size of DBR types 0..38 (db_access.h) */
static const int DBR_SIZE[39] = {40, 2,  4,  2,  1,  4,  8,  44, 6,  8,  6,  6,  8,
                                 16, 52, 16, 16, 16, 16, 16, 24, 44, 26, 44, 424, 20,
                                 40, 72, 44, 30, 52, 424, 22, 48, 88, 2,  2,  48, 40};

static int family_done = 0;
static int family_status = 0;
static unsigned char *family_buffer = NULL;
static int family_size = 0;

static void on_family(struct event_handler_args args) {
  family_status = args.status;
  if (args.status == ECA_NORMAL) memcpy(family_buffer, args.dbr, family_size);
  family_done = 1;
}

static int mode_families(const char *name) {
  chid chan = connect_pv(name);
  unsigned char buffer[512];
  printf("{");
  int first = 1;
  for (int type = 0; type <= 38; type++) {
    if (type == 35 || type == 36) continue;
    memset(buffer, 0, sizeof buffer);
    family_done = 0;
    family_buffer = buffer;
    family_size = DBR_SIZE[type];
    int status = ca_array_get_callback(type, 1, chan, on_family, NULL);
    double deadline = now() + 10;
    while (status == ECA_NORMAL && !family_done && now() < deadline) ca_pend_event(0.001);
    if (status == ECA_NORMAL) status = family_done ? family_status : -1;
    printf("%s\"%d\":\"", first ? "" : ",", type);
    first = 0;
    if (status != ECA_NORMAL) {
      printf("error %d", status);
    } else {
      for (int i = 0; i < DBR_SIZE[type]; i++) printf("%02x", buffer[i]);
    }
    printf("\"");
  }
  printf("}\n");
  ca_context_destroy();
  return 0;
}

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    perror("connect");
    exit(2);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int mode_rawpp(int port, long size, double seconds) {
  int fd = raw_connect(port);
  char request[16] = {0};
  char *buffer = malloc(1 << 20);
  long rounds = 0;
  double cpu0 = cpu();
  double start = now();
  double end = start + seconds;
  while (now() < end) {
    if (write(fd, request, sizeof request) != sizeof request) return 2;
    long got = 0;
    while (got < size) {
      long want = size - got < (1 << 20) ? size - got : (1 << 20);
      ssize_t n = read(fd, buffer, want);
      if (n <= 0) return 2;
      got += n;
    }
    rounds++;
  }
  double elapsed = now() - start;
  printf("{\"rounds\":%ld,\"bytes\":%.0f,\"seconds\":%.4f,\"cpu\":%.4f}\n", rounds,
         (double)rounds * size, elapsed, cpu() - cpu0);
  close(fd);
  free(buffer);
  return 0;
}

static int mode_rawstream(int port, double seconds) {
  int fd = raw_connect(port);
  char *buffer = malloc(1 << 20);
  double total = 0;
  double cpu0 = cpu();
  double start = now();
  double end = start + seconds;
  while (now() < end) {
    ssize_t n = read(fd, buffer, 1 << 20);
    if (n <= 0) break;
    total += n;
  }
  double elapsed = now() - start;
  printf("{\"bytes\":%.0f,\"seconds\":%.4f,\"cpu\":%.4f}\n", total, elapsed, cpu() - cpu0);
  close(fd);
  free(buffer);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "read") == 0) return mode_read(argv[2], atof(argv[3]));
  if (argc >= 4 && strcmp(argv[1], "monitor") == 0) return mode_monitor(argv[2], atof(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "families") == 0) return mode_families(argv[2]);
  if (argc >= 5 && strcmp(argv[1], "rawpp") == 0)
    return mode_rawpp(atoi(argv[2]), atol(argv[3]), atof(argv[4]));
  if (argc >= 4 && strcmp(argv[1], "rawstream") == 0)
    return mode_rawstream(atoi(argv[2]), atof(argv[3]));
  fprintf(stderr, "usage: %s read|monitor <pv> <s> | rawpp <port> <bytes> <s> | rawstream <port> <s>\n",
          argv[0]);
  return 1;
}
