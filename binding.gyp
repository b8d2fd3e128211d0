{
  "targets": [
    {
      "target_name": "smoothtask",
      "sources": ["<!@(ls -1 native/*.cc)"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "bpf"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS",
                  "NODE_ADDON_API_CPP_EXCEPTIONS_ALL", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["<!@(pkg-config --libs libbpf libelf zlib)", "-lpthread", "-ldl"]
    },
    {
      "target_name": "smoothtask-precheck",
      "type": "executable",
      "sources": ["native/helper/precheck.cc"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["<!@(pkg-config --libs libbpf libelf zlib)", "-lpthread"]
    }
  ]
}
