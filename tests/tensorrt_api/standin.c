/* Stand-ins for libnvinfer.so.11, libnvonnxparser.so.11 and libnvinfer_plugin.so.11: the nine entry points
   the TensorRT 11.4 Python bindings link, so that the real bindings import on a machine without TensorRT.
   Every factory returns NULL: nothing can be built or run with them.  They live in build/trt-stubs/lib only
   and are put on LD_LIBRARY_PATH of the test subprocesses and the stub generator, never anywhere else. */
void *createInferBuilder_INTERNAL(void *logger, int version) { return 0; }
void *createInferRuntime_INTERNAL(void *logger, int version) { return 0; }
void *createInferRefitter_INTERNAL(void *engine, void *logger, int version) { return 0; }
void *getPluginRegistry(void) { return 0; }
void *getBuilderPluginRegistry(int kind) { return 0; }
int initLibNvInferPlugins(void *logger, const char *library_namespace) { return 0; }
void *createNvOnnxParser_INTERNAL(void *network, void *logger, int version) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void *refitter, void *logger, int version) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
