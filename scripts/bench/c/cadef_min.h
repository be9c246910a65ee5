/*
 * The subset of EPICS libca's cadef.h that our C clients use. Debian's libca-dev ships no
 * headers, so the declarations are repeated here (stable C ABI of EPICS base 3.14 .. 7).
 * Link with -lca.
 */
#ifndef DISS_CADEF_MIN_H
#define DISS_CADEF_MIN_H

typedef struct oldChannelNotify *chid;
typedef struct oldSubscription *evid;
typedef long chtype;
struct event_handler_args {
  void *usr;
  chid chid;
  long type;
  long count;
  const void *dbr;
  int status;
};
typedef void caEventCallBackFunc(struct event_handler_args);
int ca_context_create(int preemptive_callback_select);
void ca_context_destroy(void);
int ca_create_channel(const char *name, void *connCallback, void *user, unsigned priority,
                      chid *pChan);
int ca_pend_io(double timeout);
int ca_pend_event(double timeout);
int ca_flush_io(void);
int ca_array_get(chtype type, unsigned long count, chid chan, void *pValue);
int ca_array_get_callback(chtype type, unsigned long count, chid chan, caEventCallBackFunc *func,
                          void *arg);
int ca_array_put(chtype type, unsigned long count, chid chan, const void *pValue);
int ca_create_subscription(chtype type, unsigned long count, chid chan, long mask,
                           caEventCallBackFunc *func, void *arg, evid *pEvid);
short ca_field_type(chid chan);
unsigned long ca_element_count(chid chan);
const char *ca_message(long status);

#define ECA_NORMAL 1
#define DBR_LONG 5
#define DBR_DOUBLE 6
#define DBE_VALUE 1

#endif
