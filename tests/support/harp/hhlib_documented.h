/*
 * Prototypes of the HydraHarp library functions the Harp backend binds, as documented by
 * PicoQuant for HHLib 3.0 (hhlib.h; every function returns an error code, negative on error).
 * Tests compile the stand-in and the backend's own binding table against these declarations:
 * any difference in a parameter type is a "conflicting types" compile error.
 */
int HH_GetLibraryVersion(char *version);
int HH_GetErrorString(char *text, int errcode);
int HH_OpenDevice(int devidx, char *serial);
int HH_CloseDevice(int devidx);
int HH_Initialize(int devidx, int mode, int refsource);
int HH_GetHardwareInfo(int devidx, char *model, char *partno, char *version);
int HH_GetSerialNumber(int devidx, char *serial);
int HH_GetBaseResolution(int devidx, double *resolution, int *binsteps);
int HH_GetNumOfInputChannels(int devidx, int *nchannels);
int HH_Calibrate(int devidx);
int HH_SetSyncDiv(int devidx, int div);
int HH_SetSyncCFD(int devidx, int level, int zerocross);
int HH_SetSyncChannelOffset(int devidx, int value);
int HH_SetInputCFD(int devidx, int channel, int level, int zerocross);
int HH_SetInputChannelOffset(int devidx, int channel, int value);
int HH_SetHistoLen(int devidx, int lencode, int *actuallen);
int HH_SetBinning(int devidx, int binning);
int HH_SetOffset(int devidx, int offset);
int HH_ClearHistMem(int devidx);
int HH_StartMeas(int devidx, int tacq);
int HH_StopMeas(int devidx);
int HH_CTCStatus(int devidx, int *ctcstatus);
int HH_GetHistogram(int devidx, unsigned int *chcount, int channel, int clear);
int HH_GetResolution(int devidx, double *resolution);
int HH_GetSyncRate(int devidx, int *syncrate);
int HH_GetCountRate(int devidx, int channel, int *cntrate);
int HH_GetFlags(int devidx, int *flags);
int HH_GetWarnings(int devidx, int *warnings);
int HH_GetWarningsText(int devidx, char *text, int warnings);
