{
  "targets": [
    {
      "target_name": "qimg_native",
      "sources": ["src/io/native/qimg_native.c", "src/io/native/inflate.c", "src/io/native/copy.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
