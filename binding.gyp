{
  "targets": [
    {
      "target_name": "qimg_native",
      "sources": ["src/io/native/qimg_native.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
