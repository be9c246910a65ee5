/*
 * Stand-in for PicoQuant's HydraHarp library (HHLib 3.x) for tests without hardware.
 *
 * Exports the HH_* functions the diss-ioc Harp backend binds, with the documented C signatures
 * (see hhlib_documented.h, which the tests include when compiling this file so that any
 * difference is a compile error). It simulates HydraHarp devices in histogram mode:
 *
 *   HHSTANDIN_DEVICES   "index:serial,..." devices present (default "0:1020304")
 *   HHSTANDIN_INPUTS    number of inputs (default 4)
 *   HHSTANDIN_VERSION   what HH_GetLibraryVersion reports (default "3.0")
 *   HHSTANDIN_LOG       file: one line per call ("HH_StartMeas 0 100") appended
 *   HHSTANDIN_DUMP      folder: every histogram read is also written to histogram_<input>.u32
 *   HHSTANDIN_CONTROL   file read at every call; its lines:
 *                         fail <Call> <code>   that call (e.g. StartMeas) returns <code>
 *                         hang                 measurements never finish (CTCStatus stays 0)
 *                         unplug               the device is gone: open fails (-1), every
 *                                              other device call fails (-37)
 *                         warn <bits>          HH_GetWarnings reports <bits>
 *                         delay <Call> <ms>    that call takes <ms> longer (a slow device)
 *
 * Histogram of input i (0-based) after a measurement of T ms, with the bin width
 * W = 2^binning ps, histogram offset O ns and input channel offset C_i ps:
 *   bin b starts at t = O*1000 + b*W ps; t0 = 1000*(i+1) + C_i; h = 2000*(i+1);
 *   counts = T/100 + (t < t0 ? 0 : ((i+1)*T) >> ((t - t0) / h))   (shift >= 63 gives 0)
 * The measurement time T is the requested one, or the time elapsed when it was stopped early.
 * Sync rate 80 MHz; count rate of input i: 10000*(i+1) per second.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXDEVNUM 8
#define MAXINPUTS 8
#define MAXHISTLEN 65536

#define ERROR_DEVICE_OPEN_FAIL -1
#define ERROR_DEVICE_NOT_OPEN -10
#define ERROR_INSTANCE_RUNNING -16
#define ERROR_INVALID_ARGUMENT -17
#define ERROR_INVALID_MODE -18
#define ERROR_NOT_INITIALIZED -22
#define ERROR_NOT_CALIBRATED -23
#define ERROR_USB_BULKRD_FAIL -37

struct device {
  int present;
  char serial[8];
  int open;
  int initialized;
  int calibrated;
  int inputs;
  int binning;
  int offset_ns;
  int histlen;
  int sync_div;
  int chan_offset[MAXINPUTS];
  int running;
  int tacq_ms;
  double started;
  long long measured_ms;
  int histogram_ready;
};

static struct device devices[MAXDEVNUM];
static int configured = 0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void configure(void) {
  if (configured) return;
  configured = 1;
  const char *inputs_text = getenv("HHSTANDIN_INPUTS");
  int inputs = inputs_text ? atoi(inputs_text) : 4;
  if (inputs < 1 || inputs > MAXINPUTS) inputs = 4;
  const char *list = getenv("HHSTANDIN_DEVICES");
  char buffer[256];
  snprintf(buffer, sizeof buffer, "%s", list ? list : "0:1020304");
  for (char *item = strtok(buffer, ","); item != NULL; item = strtok(NULL, ",")) {
    int index = atoi(item);
    const char *colon = strchr(item, ':');
    if (index < 0 || index >= MAXDEVNUM) continue;
    devices[index].present = 1;
    devices[index].inputs = inputs;
    snprintf(devices[index].serial, sizeof devices[index].serial, "%s", colon ? colon + 1 : "0");
  }
}

static void log_call(const char *name, int a, int b, int c) {
  const char *path = getenv("HHSTANDIN_LOG");
  if (path == NULL) return;
  FILE *f = fopen(path, "a");
  if (f == NULL) return;
  fprintf(f, "%s %d %d %d\n", name, a, b, c);
  fclose(f);
}

/* Reads the control file: the injected code for `call` (0 = none), and the hang/unplug flags. */
struct control {
  int fail_code;
  int hang;
  int unplug;
  int warnings;
  int delay_ms;
};

static struct control read_control(const char *call) {
  struct control c = {0, 0, 0, 0, 0};
  const char *path = getenv("HHSTANDIN_CONTROL");
  if (path == NULL) return c;
  FILE *f = fopen(path, "r");
  if (f == NULL) return c;
  char line[256];
  while (fgets(line, sizeof line, f) != NULL) {
    char word[64], name[64];
    int code;
    if (sscanf(line, "%63s", word) != 1) continue;
    if (strcmp(word, "hang") == 0) c.hang = 1;
    else if (strcmp(word, "unplug") == 0) c.unplug = 1;
    else if (strcmp(word, "warn") == 0 && sscanf(line, "%*s %i", &code) == 1) c.warnings = code;
    else if (strcmp(word, "fail") == 0 && sscanf(line, "%*s %63s %i", name, &code) == 2) {
      const char *bare = strncmp(name, "HH_", 3) == 0 ? name + 3 : name;
      if (strcmp(bare, call + 3) == 0) c.fail_code = code;
    } else if (strcmp(word, "delay") == 0 && sscanf(line, "%*s %63s %i", name, &code) == 2) {
      const char *bare = strncmp(name, "HH_", 3) == 0 ? name + 3 : name;
      if (strcmp(bare, call + 3) == 0) c.delay_ms = code;
    }
  }
  fclose(f);
  return c;
}

/* Common entry of every device call: logging, injected faults, device state checks. */
static int enter(const char *call, int devidx, int need_init, int a, int b) {
  configure();
  log_call(call, devidx, a, b);
  struct control c = read_control(call);
  if (c.delay_ms > 0) usleep((useconds_t)c.delay_ms * 1000);
  if (c.fail_code != 0) return c.fail_code;
  if (devidx < 0 || devidx >= MAXDEVNUM) return ERROR_INVALID_ARGUMENT;
  if (c.unplug) return ERROR_USB_BULKRD_FAIL;
  if (!devices[devidx].open) return ERROR_DEVICE_NOT_OPEN;
  if (need_init && !devices[devidx].initialized) return ERROR_NOT_INITIALIZED;
  return 0;
}

static long long elapsed_ms(struct device *d) {
  return (long long)(now_ms() - d->started);
}

static int measurement_done(struct device *d) {
  return !read_control("HH_CTCStatus").hang && elapsed_ms(d) >= d->tacq_ms;
}

static void put_string(char *out, size_t size, const char *text) {
  snprintf(out, size, "%s", text);
}

int HH_GetLibraryVersion(char *vers) {
  const char *v = getenv("HHSTANDIN_VERSION");
  log_call("HH_GetLibraryVersion", 0, 0, 0);
  put_string(vers, 8, v ? v : "3.0");
  return 0;
}

int HH_GetErrorString(char *errstring, int errcode) {
  const char *text;
  switch (errcode) {
    case 0: text = "no error"; break;
    case ERROR_DEVICE_OPEN_FAIL: text = "device open failed"; break;
    case ERROR_DEVICE_NOT_OPEN: text = "device not open"; break;
    case ERROR_INSTANCE_RUNNING: text = "instance running"; break;
    case ERROR_INVALID_ARGUMENT: text = "invalid argument"; break;
    case ERROR_INVALID_MODE: text = "invalid mode"; break;
    case ERROR_NOT_INITIALIZED: text = "not initialized"; break;
    case ERROR_NOT_CALIBRATED: text = "not calibrated"; break;
    case -36: text = "USB vendor command failed"; break;
    case ERROR_USB_BULKRD_FAIL: text = "USB bulk read failed"; break;
    case -46: text = "calibration failed"; break;
    default: text = "unknown error"; break;
  }
  /* The documented buffer is 40 bytes. */
  put_string(errstring, 40, text);
  return 0;
}

int HH_OpenDevice(int devidx, char *serial) {
  configure();
  log_call("HH_OpenDevice", devidx, 0, 0);
  struct control c = read_control("HH_OpenDevice");
  if (c.fail_code != 0) return c.fail_code;
  if (devidx < 0 || devidx >= MAXDEVNUM) return ERROR_INVALID_ARGUMENT;
  struct device *d = &devices[devidx];
  if (!d->present || c.unplug) return ERROR_DEVICE_OPEN_FAIL;
  int inputs = d->inputs;
  char keep[8];
  memcpy(keep, d->serial, sizeof keep);
  memset(d, 0, sizeof *d);
  d->present = 1;
  d->inputs = inputs;
  memcpy(d->serial, keep, sizeof keep);
  d->open = 1;
  put_string(serial, 8, d->serial);
  return 0;
}

int HH_CloseDevice(int devidx) {
  configure();
  log_call("HH_CloseDevice", devidx, 0, 0);
  struct control c = read_control("HH_CloseDevice");
  if (c.fail_code != 0) return c.fail_code;
  if (devidx < 0 || devidx >= MAXDEVNUM) return ERROR_INVALID_ARGUMENT;
  devices[devidx].open = 0;
  devices[devidx].initialized = 0;
  devices[devidx].running = 0;
  return 0;
}

int HH_Initialize(int devidx, int mode, int refsource) {
  int rc = enter("HH_Initialize", devidx, 0, mode, refsource);
  if (rc) return rc;
  if (mode != 0 && mode != 2 && mode != 3 && mode != 8) return ERROR_INVALID_MODE;
  if (refsource != 0 && refsource != 1) return ERROR_INVALID_ARGUMENT;
  struct device *d = &devices[devidx];
  d->initialized = 1;
  d->calibrated = 0;
  d->binning = 0;
  d->offset_ns = 0;
  d->histlen = MAXHISTLEN;
  d->sync_div = 1;
  memset(d->chan_offset, 0, sizeof d->chan_offset);
  return 0;
}

int HH_GetHardwareInfo(int devidx, char *model, char *partno, char *version) {
  int rc = enter("HH_GetHardwareInfo", devidx, 1, 0, 0);
  if (rc) return rc;
  put_string(model, 16, "HydraHarp 400");
  put_string(partno, 8, "930004");
  put_string(version, 8, "2.0");
  return 0;
}

int HH_GetSerialNumber(int devidx, char *serial) {
  int rc = enter("HH_GetSerialNumber", devidx, 1, 0, 0);
  if (rc) return rc;
  put_string(serial, 8, devices[devidx].serial);
  return 0;
}

int HH_GetBaseResolution(int devidx, double *resolution, int *binsteps) {
  int rc = enter("HH_GetBaseResolution", devidx, 1, 0, 0);
  if (rc) return rc;
  *resolution = 1.0;
  *binsteps = 26;
  return 0;
}

int HH_GetNumOfInputChannels(int devidx, int *nchannels) {
  int rc = enter("HH_GetNumOfInputChannels", devidx, 1, 0, 0);
  if (rc) return rc;
  *nchannels = devices[devidx].inputs;
  return 0;
}

/* Built without it (-DSTANDIN_OMIT_CALIBRATE) to test the "missing function" error. */
#ifndef STANDIN_OMIT_CALIBRATE
int HH_Calibrate(int devidx) {
  int rc = enter("HH_Calibrate", devidx, 1, 0, 0);
  if (rc) return rc;
  devices[devidx].calibrated = 1;
  return 0;
}
#endif

int HH_SetSyncDiv(int devidx, int div) {
  int rc = enter("HH_SetSyncDiv", devidx, 1, div, 0);
  if (rc) return rc;
  if (div < 1 || div > 16 || (div & (div - 1)) != 0) return ERROR_INVALID_ARGUMENT;
  devices[devidx].sync_div = div;
  return 0;
}

int HH_SetSyncCFD(int devidx, int level, int zc) {
  int rc = enter("HH_SetSyncCFD", devidx, 1, level, zc);
  if (rc) return rc;
  if (level < 0 || level > 1000 || zc < 0 || zc > 40) return ERROR_INVALID_ARGUMENT;
  return 0;
}

int HH_SetSyncChannelOffset(int devidx, int value) {
  int rc = enter("HH_SetSyncChannelOffset", devidx, 1, value, 0);
  if (rc) return rc;
  if (value < -99999 || value > 99999) return ERROR_INVALID_ARGUMENT;
  return 0;
}

int HH_SetInputCFD(int devidx, int channel, int level, int zc) {
  int rc = enter("HH_SetInputCFD", devidx, 1, channel, level);
  if (rc) return rc;
  if (channel < 0 || channel >= devices[devidx].inputs) return ERROR_INVALID_ARGUMENT;
  if (level < 0 || level > 1000 || zc < 0 || zc > 40) return ERROR_INVALID_ARGUMENT;
  return 0;
}

int HH_SetInputChannelOffset(int devidx, int channel, int value) {
  int rc = enter("HH_SetInputChannelOffset", devidx, 1, channel, value);
  if (rc) return rc;
  if (channel < 0 || channel >= devices[devidx].inputs) return ERROR_INVALID_ARGUMENT;
  if (value < -99999 || value > 99999) return ERROR_INVALID_ARGUMENT;
  devices[devidx].chan_offset[channel] = value;
  return 0;
}

int HH_SetHistoLen(int devidx, int lencode, int *actuallen) {
  int rc = enter("HH_SetHistoLen", devidx, 1, lencode, 0);
  if (rc) return rc;
  if (lencode < 0 || lencode > 6) return ERROR_INVALID_ARGUMENT;
  devices[devidx].histlen = 1024 << lencode;
  *actuallen = devices[devidx].histlen;
  return 0;
}

int HH_SetBinning(int devidx, int binning) {
  int rc = enter("HH_SetBinning", devidx, 1, binning, 0);
  if (rc) return rc;
  if (binning < 0 || binning > 25) return ERROR_INVALID_ARGUMENT;
  devices[devidx].binning = binning;
  return 0;
}

int HH_SetOffset(int devidx, int offset) {
  int rc = enter("HH_SetOffset", devidx, 1, offset, 0);
  if (rc) return rc;
  if (offset < 0 || offset > 500000) return ERROR_INVALID_ARGUMENT;
  devices[devidx].offset_ns = offset;
  return 0;
}

int HH_ClearHistMem(int devidx) {
  int rc = enter("HH_ClearHistMem", devidx, 1, 0, 0);
  if (rc) return rc;
  devices[devidx].histogram_ready = 0;
  devices[devidx].measured_ms = 0;
  return 0;
}

int HH_StartMeas(int devidx, int tacq) {
  int rc = enter("HH_StartMeas", devidx, 1, tacq, 0);
  if (rc) return rc;
  struct device *d = &devices[devidx];
  if (!d->calibrated) return ERROR_NOT_CALIBRATED;
  if (d->running) return ERROR_INSTANCE_RUNNING;
  if (tacq < 1 || tacq > 360000000) return ERROR_INVALID_ARGUMENT;
  d->running = 1;
  d->tacq_ms = tacq;
  d->started = now_ms();
  return 0;
}

int HH_StopMeas(int devidx) {
  int rc = enter("HH_StopMeas", devidx, 1, 0, 0);
  if (rc) return rc;
  struct device *d = &devices[devidx];
  if (d->running) {
    long long ms = measurement_done(d) ? d->tacq_ms : elapsed_ms(d);
    d->measured_ms = ms > d->tacq_ms ? d->tacq_ms : ms;
    d->histogram_ready = 1;
  }
  d->running = 0;
  return 0;
}

int HH_CTCStatus(int devidx, int *ctcstatus) {
  int rc = enter("HH_CTCStatus", devidx, 1, 0, 0);
  if (rc) return rc;
  struct device *d = &devices[devidx];
  *ctcstatus = d->running ? measurement_done(d) : 1;
  return 0;
}

static void dump(int channel, const unsigned int *counts, int length) {
  const char *folder = getenv("HHSTANDIN_DUMP");
  if (folder == NULL) return;
  char path[512];
  snprintf(path, sizeof path, "%s/histogram_%d.u32", folder, channel);
  FILE *f = fopen(path, "wb");
  if (f == NULL) return;
  fwrite(counts, sizeof *counts, (size_t)length, f);
  fclose(f);
}

int HH_GetHistogram(int devidx, unsigned int *chcount, int channel, int clear) {
  int rc = enter("HH_GetHistogram", devidx, 1, channel, clear);
  if (rc) return rc;
  struct device *d = &devices[devidx];
  if (channel < 0 || channel >= d->inputs || (clear != 0 && clear != 1)) {
    return ERROR_INVALID_ARGUMENT;
  }
  long long t_ms = d->histogram_ready ? d->measured_ms : 0;
  long long width = 1LL << d->binning;
  long long t0 = 1000LL * (channel + 1) + d->chan_offset[channel];
  long long half = 2000LL * (channel + 1);
  unsigned long long peak = (unsigned long long)(channel + 1) * (unsigned long long)t_ms;
  for (int b = 0; b < d->histlen; b++) {
    long long t = d->offset_ns * 1000LL + b * width;
    unsigned long long counts = (unsigned long long)(t_ms / 100);
    if (t >= t0) {
      long long shift = (t - t0) / half;
      if (shift < 63) counts += peak >> shift;
    }
    chcount[b] = counts > 0xffffffffULL ? 0xffffffffu : (unsigned int)counts;
  }
  dump(channel, chcount, d->histlen);
  return 0;
}

int HH_GetResolution(int devidx, double *resolution) {
  int rc = enter("HH_GetResolution", devidx, 1, 0, 0);
  if (rc) return rc;
  *resolution = (double)(1LL << devices[devidx].binning);
  return 0;
}

int HH_GetSyncRate(int devidx, int *syncrate) {
  int rc = enter("HH_GetSyncRate", devidx, 1, 0, 0);
  if (rc) return rc;
  *syncrate = 80000000;
  return 0;
}

int HH_GetCountRate(int devidx, int channel, int *cntrate) {
  int rc = enter("HH_GetCountRate", devidx, 1, channel, 0);
  if (rc) return rc;
  if (channel < 0 || channel >= devices[devidx].inputs) return ERROR_INVALID_ARGUMENT;
  *cntrate = 10000 * (channel + 1);
  return 0;
}

int HH_GetFlags(int devidx, int *flags) {
  int rc = enter("HH_GetFlags", devidx, 1, 0, 0);
  if (rc) return rc;
  *flags = devices[devidx].running ? 0x0020 : 0;
  return 0;
}

int HH_GetWarnings(int devidx, int *warnings) {
  int rc = enter("HH_GetWarnings", devidx, 1, 0, 0);
  if (rc) return rc;
  *warnings = read_control("HH_GetWarnings").warnings;
  return 0;
}

int HH_GetWarningsText(int devidx, char *text, int warnings) {
  int rc = enter("HH_GetWarningsText", devidx, 1, warnings, 0);
  if (rc) return rc;
  char buffer[128];
  snprintf(buffer, sizeof buffer, "stand-in warning bits 0x%04x\n", warnings);
  put_string(text, 16384, buffer);
  return 0;
}
