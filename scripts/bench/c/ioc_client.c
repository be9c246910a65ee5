/*
 * Latency / rate client for the diss-ioc benchmark (scripts/bench/ioc_latency.ts), on libca.
 *
 *   ioc_client PREFIX CHANNEL latency N   -> duration := 0, then N x (caput acquire 1, wait for CHANNEL:image update,
 *                                              then for acquire == 0); prints each latency in ms
 *   ioc_client PREFIX CHANNEL rate SECS   -> counts CHANNEL:image updates for SECS seconds
 *
 * libca functions are declared in cadef_min.h (Debian's libca-dev ships no headers). Callbacks run preemptively in libca's thread; the main thread
 * waits on a condition variable, so the timing does not depend on a polling interval.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cadef_min.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static long image_updates = 0;
static long acquire_value = -1;
static long acquire_updates = 0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_image(struct event_handler_args args) {
  (void)args;
  pthread_mutex_lock(&lock);
  image_updates++;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static void on_acquire(struct event_handler_args args) {
  pthread_mutex_lock(&lock);
  if (args.status == ECA_NORMAL && args.dbr != NULL) acquire_value = *(const int *)args.dbr;
  acquire_updates++;
  pthread_cond_broadcast(&changed);
  pthread_mutex_unlock(&lock);
}

static void check(int status, const char *what) {
  if (status != ECA_NORMAL) {
    fprintf(stderr, "%s: %s\n", what, ca_message(status));
    exit(1);
  }
}

/* Waits (lock held) until pred() or the deadline; returns 0 on timeout. */
static int wait_until(int (*pred)(long), long arg, double timeout_ms) {
  double end = now_ms() + timeout_ms;
  while (!pred(arg)) {
    double left = end - now_ms();
    if (left <= 0) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(left > 50 ? 50e6 : left * 1e6);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&changed, &lock, &ts);
  }
  return 1;
}
static int images_above(long n) { return image_updates > n; }
static int acquire_is(long v) { return acquire_value == v; }
static int acquire_updated(long n) { return acquire_updates > n; }

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s PREFIX CHANNEL latency N | rate SECS\n", argv[0]);
    return 2;
  }
  const char *prefix = argv[1], *channel = argv[2], *mode = argv[3];
  double amount = atof(argv[4]);
  char name[256];
  chid acquire, image, duration;
  evid ev1, ev2;
  check(ca_context_create(1), "ca_context_create");
  snprintf(name, sizeof name, "%sacquire", prefix);
  check(ca_create_channel(name, NULL, NULL, 0, &acquire), "create acquire");
  snprintf(name, sizeof name, "%s%s:image", prefix, channel);
  check(ca_create_channel(name, NULL, NULL, 0, &image), "create image");
  snprintf(name, sizeof name, "%sduration", prefix);
  check(ca_create_channel(name, NULL, NULL, 0, &duration), "create duration");
  check(ca_pend_io(10.0), "connect");
  if (strcmp(mode, "latency") == 0) {
    double zero = 0.0;
    check(ca_array_put(DBR_DOUBLE, 1, duration, &zero), "put duration");
  }
  check(ca_create_subscription(DBR_LONG, 1, acquire, DBE_VALUE, on_acquire, NULL, &ev1),
        "subscribe acquire");
  check(ca_create_subscription(ca_field_type(image), 0, image, DBE_VALUE, on_image, NULL, &ev2),
        "subscribe image");
  ca_flush_io();
  pthread_mutex_lock(&lock);
  /* Initial monitor updates. */
  /* An empty image PV may send no initial update: just let any initial one arrive first. */
  wait_until(images_above, 1L << 60, 300);
  /* Latency mode starts from an idle IOC (acquire 0); in rate mode auto-acquire may keep acquire
     at 1 throughout, so any initial update of it will do. */
  int initial = strcmp(mode, "latency") == 0 ? wait_until(acquire_is, 0, 10000)
                                             : wait_until(acquire_updated, 0, 10000);
  if (!initial) {
    fprintf(stderr, "no initial updates (acquire=%ld images=%ld)\n", acquire_value,
            image_updates);
    return 1;
  }
  pthread_mutex_unlock(&lock);
  printf("type=%d count=%lu\n", ca_field_type(image), ca_element_count(image));

  if (strcmp(mode, "latency") == 0) {
    int n = (int)amount;
    for (int i = 0; i < n; i++) {
      pthread_mutex_lock(&lock);
      long before = image_updates;
      acquire_value = -1;
      pthread_mutex_unlock(&lock);
      int one = 1;
      double t0 = now_ms();
      check(ca_array_put(DBR_LONG, 1, acquire, &one), "put");
      ca_flush_io();
      pthread_mutex_lock(&lock);
      if (!wait_until(images_above, before, 10000)) {
        fprintf(stderr, "timeout waiting for image %d\n", i);
        return 1;
      }
      double t1 = now_ms();
      if (!wait_until(acquire_is, 0, 10000)) {
        fprintf(stderr, "timeout waiting for acquire=0 after %d\n", i);
        return 1;
      }
      pthread_mutex_unlock(&lock);
      printf("latency_ms=%.3f\n", t1 - t0);
    }
  } else {
    pthread_mutex_lock(&lock);
    long start = image_updates;
    double t0 = now_ms();
    wait_until(images_above, 1L << 60, amount * 1000);
    long got = image_updates - start;
    double t1 = now_ms();
    pthread_mutex_unlock(&lock);
    printf("updates=%ld seconds=%.3f rate=%.1f\n", got, (t1 - t0) / 1e3, got / ((t1 - t0) / 1e3));
  }
  fflush(stdout);
  ca_context_destroy();
  return 0;
}
