/*
 * Load and probe client for scripts/bench/ca_new_client.ts, on libca.
 *
 *   image_load_client load PREFIX SECONDS
 *       connects PREFIX:img1, PREFIX:img2 (images) and PREFIX:s1, PREFIX:s2 (scalars), prints
 *       "connected <seconds>" once all four are connected, monitors them (native type, whole
 *       array) for SECONDS after that (or until SIGTERM/SIGINT) and prints one JSON line with
 *       the update counts. Each SIGUSR1 prints "mark <image updates so far> <seconds>" (within
 *       50 ms), so that the caller can take the image rate over a window of its choice.
 *   image_load_client probe PV TIMEOUT
 *       like caget: connects PV and reads it once as DBR_DOUBLE; prints one JSON line with the
 *       connect and read times (seconds since the context was created).
 *
 * libca functions are declared in cadef_min.h (Debian's libca-dev ships no headers).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cadef_min.h"

int ca_state(chid chan); /* enum channel_state: 2 = connected */
#define CS_CONN 2

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile sig_atomic_t stop = 0;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static volatile sig_atomic_t mark = 0;
static void on_mark(int sig) {
  (void)sig;
  mark = 1;
}

static long image_updates = 0;
static long scalar_updates = 0;

static void on_image(struct event_handler_args args) {
  if (args.status == ECA_NORMAL) image_updates++;
}

static void on_scalar(struct event_handler_args args) {
  if (args.status == ECA_NORMAL) scalar_updates++;
}

static int load(const char *prefix, double seconds) {
  const char *suffix[4] = {"img1", "img2", "s1", "s2"};
  chid chan[4];
  double t0 = now();
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGUSR1, on_mark);
  if (ca_context_create(0) != ECA_NORMAL) return 2;
  for (int i = 0; i < 4; i++) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, suffix[i]);
    ca_create_channel(name, NULL, NULL, 0, &chan[i]);
  }
  ca_flush_io();
  /* Wait (bounded) until all four are connected. */
  double deadline = t0 + 120.0;
  int connected = 0;
  while (!connected && !stop && now() < deadline) {
    ca_pend_event(0.05);
    connected = 1;
    for (int i = 0; i < 4; i++) connected &= ca_state(chan[i]) == CS_CONN;
  }
  double connect_s = now() - t0;
  if (!connected) {
    printf("{\"connected\":false,\"connect_s\":%.3f}\n", connect_s);
    return 1;
  }
  printf("connected %.3f\n", connect_s);
  fflush(stdout);
  for (int i = 0; i < 4; i++) {
    evid ev;
    ca_create_subscription(ca_field_type(chan[i]), ca_element_count(chan[i]), chan[i], DBE_VALUE,
                           i < 2 ? on_image : on_scalar,
                           NULL, &ev);
  }
  ca_flush_io();
  double start = now();
  long images_at_start = image_updates;
  while (!stop && now() - start < seconds) {
    ca_pend_event(0.05);
    if (mark) {
      mark = 0;
      printf("mark %ld %.3f\n", image_updates, now() - t0);
      fflush(stdout);
    }
  }
  double elapsed = now() - start;
  printf("{\"connected\":true,\"connect_s\":%.3f,\"seconds\":%.3f,\"image_updates\":%ld,"
         "\"scalar_updates\":%ld}\n",
         connect_s, elapsed, image_updates - images_at_start, scalar_updates);
  return 0;
}

static int probe(const char *pv, double timeout) {
  double t0 = now();
  if (ca_context_create(0) != ECA_NORMAL) return 2;
  chid chan;
  ca_create_channel(pv, NULL, NULL, 0, &chan);
  int status = ca_pend_io(timeout);
  double connect_s = now() - t0;
  if (status != ECA_NORMAL) {
    printf("{\"ok\":false,\"stage\":\"connect\",\"connect_s\":%.3f}\n", connect_s);
    return 1;
  }
  double value = 0;
  ca_array_get(DBR_DOUBLE, 1, chan, &value);
  status = ca_pend_io(timeout);
  double total_s = now() - t0;
  printf("{\"ok\":%s,\"connect_s\":%.3f,\"total_s\":%.3f,\"value\":%g}\n",
         status == ECA_NORMAL ? "true" : "false", connect_s, total_s, value);
  return status == ECA_NORMAL ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "load") == 0) return load(argv[2], atof(argv[3]));
  if (argc == 4 && strcmp(argv[1], "probe") == 0) return probe(argv[2], atof(argv[3]));
  fprintf(stderr, "usage: %s load PREFIX SECONDS | probe PV TIMEOUT\n", argv[0]);
  return 2;
}
