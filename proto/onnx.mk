# proto/onnx.mk: where the ONNX schema comes from.
#
# The schema is Debian's libonnx-dev copy (/usr/include/onnx/onnx.proto, IR 8).
# protoc-c turns it into build/gen/onnx.pb-c.{c,h}; the rule is in the top
# Makefile. Fields of newer IR versions that this schema does not know are kept
# by protobuf-c as unknown fields, and the importer carries them to export.
ifeq ($(wildcard $(ONNX_PROTO)),)
$(info onnxtrain: $(ONNX_PROTO) not found; run `make deps` (Debian package libonnx-dev))
endif
