# onnxtrain: one build for everything. See README.md and docs/.
#
#   make            release build (-O2 -g): build/libonnxtrain.{a,so}, build/onnxtrain
#   make test       every test suite; ends with "N passed, N failed"
#   make asan       AddressSanitizer + UBSan build in build/asan, then its tests
#   make debug      -O0 -g3 build in build/debug
#   make demo       the main job on a built-in default; PRECISION=bf16 (or auto) runs
#                   every training and scoring in that precision, into build/demo-bf16
#   make demo-precision  the demo's steps 1-4 in fp32 and bf16: bf16's mean top-1
#                   against fp32's spread over the seeds (build/demo-precision/)
#   make bench      the ResNet-18 benchmark table (build/bench/), within 15 minutes on 2
#                   cores; FULL=1 at the first performance issue's sizes; make bench-all:
#                   with bench-deploy, bench-dist, bench-load and bench-models
#   make test-models  every family (tests/cli/test_families.sh and
#                   test_family_parity.sh with --all), then docs/models.md
#   make bench-models one training step per family against PyTorch
#   make fuzz       libFuzzer harnesses: importer, checkpoint loader, data readers, image
#                   decoders (clang; FUZZ_TARGETS, FUZZ_SECONDS)
#   make deps       install the Debian packages the project needs (as root)
#   make install PREFIX=/usr/local
#   make CUDA=0     without the CUDA backend (default CUDA=auto: built when nvcc and
#                   the cuDNN and cuBLASLt headers are under CUDA_HOME)
#   make fetch-model NAME=resnet18-v1-7 [DEST=build/zoo]
#                   download a model of models/zoo_manifest.json, SHA-256 checked

BUILD    ?= build
PREFIX   ?= /usr/local
CC       ?= cc
WERROR   ?= 0
SAN      ?= 0
DEBUG    ?= 0

ONNX_PROTO ?= /usr/include/onnx/onnx.proto
PROTOC_C   ?= protoc-c

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wcast-qual -Wpointer-arith -Wformat=2 -Wvla -Wundef -Wdouble-promotion
ifeq ($(WERROR),1)
WARN += -Werror
endif

OPT := -O2 -g
ifeq ($(DEBUG),1)
OPT := -O0 -g3 -DOT_DEBUG=1
endif
ifeq ($(SAN),1)
OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

CPPFLAGS += -Iinclude -Isrc -I. -I$(BUILD)/gen -D_GNU_SOURCE
CFLAGS   += -std=c11 $(OPT) -fPIC -fopenmp -fno-math-errno $(WARN) -MMD -MP
LDLIBS   += -lprotobuf-c -ldnnl -ljpeg -lpng -lz -lm -lpthread -fopenmp
LDFLAGS  += $(filter -fsanitize=%,$(OPT))
# The command (not the library) writes and reads JSON through jansson.
JANSSON_CFLAGS := $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS   := $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
CPPFLAGS += $(JANSSON_CFLAGS)

# Debian packages the build, the tests and the demo need.
DEB_PACKAGES := gcc g++ make pkgconf protobuf-c-compiler libprotobuf-c-dev libonnx-dev \
                libonnx-testdata libdnnl-dev python3 python3-numpy python3-onnx python3-torch \
                python3-torchvision clang libclang-rt-14-dev libomp-14-dev zlib1g-dev \
                libjpeg62-turbo-dev libpng-dev libjansson-dev dataset-fashion-mnist \
                libopenmpi-dev openmpi-bin python3-opencv

LIB_SRC := $(sort $(wildcard src/core/*.c src/graph/*.c src/ops/*.c src/onnx/*.c \
                             src/passes/*.c src/train/*.c src/exec/*.c src/exec/cpu/*.c \
                             src/data/*.c src/models/*.c converters/*.c src/dist/dist.c))

# ------------------------------------------------------------------ CUDA backend
# src/exec/cuda/: built when the toolkit, cuDNN and cuBLASLt headers are found
# (CUDA=auto), or never (CUDA=0); left out of sanitizer builds unless CUDA=1.
# The CUDA runtime is linked statically (it loads the driver itself); cuDNN
# and cuBLASLt are opened at run time (src/exec/cuda/cuda_load.c), so the
# binary starts where there is no driver, GPU or library. Its C files always
# compile with -Werror and -DCUDNN_WARN_DEPRECATED: no deprecated cuDNN call.
CUDA_HOME ?= /usr/local/cuda
CUDA      ?= auto
ifeq ($(CUDA),auto)
ifeq ($(SAN),1)
CUDA := 0
else
CUDA := $(if $(and $(wildcard $(CUDA_HOME)/bin/nvcc),$(wildcard $(CUDA_HOME)/include/cudnn_backend.h),$(wildcard $(CUDA_HOME)/include/cublasLt.h)),1,0)
endif
endif
NVCC       ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCHS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
CUDA_C_SRC  := $(sort $(wildcard src/exec/cuda/*.c src/exec/cuda/*/*.c))
CUDA_CU_SRC := $(sort $(wildcard src/exec/cuda/*.cu src/exec/cuda/*/*.cu))
# Without the kernels' table (ot_cuda_kernel), the backend refuses every node
# that needs one of its own kernels.
CUDA_TABLE  := $(shell grep -l -E '^ot_cuda_fn[[:space:]]+ot_cuda_kernel.const ot_node' $(CUDA_C_SRC) $(CUDA_CU_SRC) /dev/null 2>/dev/null)
# NCCL (src/dist/nccl*.c): with the CUDA backend, where the toolkit has
# nccl.h; libnccl.so.2 itself is opened at run time (docs/distributed.md)
NCCL := $(if $(and $(filter 1,$(CUDA)),$(wildcard $(CUDA_HOME)/include/nccl.h)),1,0)
ifeq ($(CUDA),1)
LIB_SRC  += $(CUDA_C_SRC) $(if $(filter 1,$(NCCL)),$(sort $(wildcard src/dist/nccl*.c)))
CUDA_OBJ := $(CUDA_CU_SRC:%.cu=$(BUILD)/obj/%.cu.o)
CUDA_CPPFLAGS := -isystem $(CUDA_HOME)/include -DCUDNN_WARN_DEPRECATED \
                 $(if $(CUDA_TABLE),,-DOT_CUDA_NO_KERNELS=1)
LDLIBS   += $(CUDA_HOME)/lib64/libcudart_static.a -ldl -lrt -lstdc++
endif
# Which objects depend on whether CUDA is in: a file whose contents change
# with CUDA, so that switching rebuilds them.
CUDA_FLAG := $(BUILD)/cuda.flag
$(shell mkdir -p $(BUILD); [ "$$(cat $(CUDA_FLAG) 2>/dev/null)" = "$(CUDA)" ] || echo "$(CUDA)" >$(CUDA_FLAG))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
GEN_SRC := $(BUILD)/gen/onnx.pb-c.c
GEN_HDR := $(BUILD)/gen/onnx.pb-c.h

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o $(CUDA_OBJ)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)

UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
# The unit tests also cover the CLI's JSON helpers (src/cli/json.c, on jansson).
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/src/cli/json.o
PARITY_SRC := $(sort $(wildcard tests/parity/*.c))
PARITY_OBJ := $(PARITY_SRC:%.c=$(BUILD)/obj/%.o)

BIN      := $(BUILD)/onnxtrain
# The MPI shim (src/dist/mpi_shim.c), loaded at run time under an MPI
# launcher; built only where OpenMPI's development files are installed.
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
MPI_SHIM   := $(if $(MPI_LIBS),$(BUILD)/libonnxtrain_mpi.so)
STATIC   := $(BUILD)/libonnxtrain.a
SHARED   := $(BUILD)/libonnxtrain.so
UNIT_BIN := $(BUILD)/test_unit
PARITY_BIN := $(BUILD)/test_parity

.PHONY: all test test-models models-table bench-models asan debug demo bench bench-deploy fuzz deps check-deps install uninstall clean format \
        test-fast fetch-model bench-dist bench-all bench-load demo-precision

all: $(BIN) $(STATIC) $(SHARED) $(MPI_SHIM)

# ---------------------------------------------------------------- generated code
# protobuf-c code for the system's ONNX schema; never committed, never edited.
$(GEN_SRC) $(GEN_HDR) &: $(ONNX_PROTO) proto/onnx.mk
	@mkdir -p $(BUILD)/gen
	cp $(ONNX_PROTO) $(BUILD)/gen/onnx.proto
	cd $(BUILD)/gen && $(PROTOC_C) --c_out=. onnx.proto

include proto/onnx.mk

$(BUILD)/obj/gen/onnx.pb-c.o: $(GEN_SRC) $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=c11 $(OPT) -fPIC -w -c $< -o $@

# Every object may include the generated header (through src/onnx/), so all
# of them wait for it; -MMD tracks the rest.
$(BUILD)/obj/%.o: %.c | $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/src/exec/cuda/%.o: src/exec/cuda/%.c $(CUDA_FLAG) | $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CUDA_CPPFLAGS) $(CFLAGS) -Werror -c $< -o $@

NCCL_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard src/dist/nccl*.c))
$(NCCL_OBJ): $(BUILD)/obj/%.o: %.c $(CUDA_FLAG) | $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CUDA_CPPFLAGS) $(CFLAGS) -Werror -c $< -o $@
$(BUILD)/obj/src/dist/dist.o: $(CUDA_FLAG)
$(BUILD)/obj/src/dist/dist.o: CPPFLAGS += -DOT_NCCL=$(NCCL)

$(BUILD)/obj/%.cu.o: %.cu | $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 -O3 -lineinfo $(CUDA_ARCHS) -Xcompiler -fPIC,-Wall $(CPPFLAGS) \
	    -isystem $(CUDA_HOME)/include -MMD -MP -c $< -o $@

# exec.c picks the backends built in; tests/unit/test_cuda.c tests the CUDA one
$(BUILD)/obj/src/exec/exec.o $(BUILD)/obj/tests/unit/test_cuda.o: $(CUDA_FLAG)
$(BUILD)/obj/src/exec/exec.o: CPPFLAGS += -DOT_CUDA=$(CUDA)
$(BUILD)/obj/tests/unit/test_cuda.o: CPPFLAGS += -DOT_CUDA=$(CUDA) $(CUDA_CPPFLAGS)

$(STATIC): $(LIB_OBJ) $(CUDA_FLAG)
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(SHARED): $(LIB_OBJ) $(CUDA_FLAG)
	$(CC) -shared -Wl,-soname,libonnxtrain.so.0 $(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS)

$(BUILD)/libonnxtrain_mpi.so: src/dist/mpi_shim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) -fPIC -D_GNU_SOURCE $(WARN) $(MPI_CFLAGS) -shared $(LDFLAGS) -o $@ $< \
	    $(MPI_LIBS) -lpthread

$(BIN): $(CLI_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC) $(JANSSON_LIBS) $(LDLIBS)

$(UNIT_BIN): $(UNIT_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(STATIC) $(JANSSON_LIBS) $(LDLIBS)

$(PARITY_BIN): $(PARITY_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(PARITY_OBJ) $(STATIC) $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(PARITY_OBJ:.o=.d)

# The CUDA backend's own kernels (src/exec/cuda/kernels/*.cu) on the host:
# the C++ compiler builds them against kernels/emu.h, and their test
# (tests/gpu/test_kernels.c) runs them against the plain C kernels here, on
# any machine; tests/cli/test_cuda_kernels.sh is its suite.
CUK_SRC := $(sort $(wildcard src/exec/cuda/kernels/*.cu))
CUK_EMU_OBJ := $(CUK_SRC:%.cu=$(BUILD)/emu/%.o) $(BUILD)/emu/src/exec/cuda/cuda_kernels.o \
               $(BUILD)/emu/src/exec/cuda/cuda_stage.o $(BUILD)/emu/src/exec/cuda/cuda_layout.o \
               $(BUILD)/emu/tests/gpu/test_kernels.o
CUK_EMU_BIN := $(BUILD)/test_kernels_emu

$(BUILD)/emu/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) -x c++ -std=c++14 -DOT_CUDA_EMU $(CPPFLAGS) $(OPT) -fPIC -fno-exceptions -fno-rtti \
	    -Wall -Wextra -MMD -MP -c $< -o $@

$(BUILD)/emu/%.o: %.c | $(GEN_HDR)
	@mkdir -p $(dir $@)
	$(CC) -DOT_CUDA_EMU $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(CUK_EMU_BIN): $(CUK_EMU_OBJ) $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $(CUK_EMU_OBJ) $(STATIC) $(LDLIBS)

-include $(CUK_EMU_OBJ:.o=.d)

# The same test on the device, when the CUDA backend is built (CUDA=1):
# linked statically against the CUDA runtime like the backend; run it on a
# machine with a GPU (tests/gpu/check.sh, or by hand).
ifeq ($(CUDA),1)
CUK_DEV_BIN := $(BUILD)/test_kernels
$(BUILD)/obj/tests/gpu/test_kernels.o: CPPFLAGS += $(CUDA_CPPFLAGS)
$(CUK_DEV_BIN): $(BUILD)/obj/tests/gpu/test_kernels.o $(STATIC)
	$(CC) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)
endif

# The executor's inference timed in the loop (tests/bench/bench_infer.c): the
# GPU check's benchmark carries it (tests/gpu/check.sh pack), make bench's
# infer workload builds its own; its dry run is in make test.
BENCH_INFER := $(BUILD)/bench/bench_infer
$(BENCH_INFER): tests/bench/bench_infer.c $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(filter-out -MMD -MP,$(CFLAGS)) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

# ------------------------------------------------------------------ set-up
deps:
	@if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(DEB_PACKAGES); \
	else \
	    echo "run as root:"; \
	    echo "  apt-get update && apt-get install -y $(DEB_PACKAGES)"; \
	    exit 1; \
	fi

# Runs `make deps` only when a package is missing.
check-deps:
	@missing=$$(sh tools/missing_packages.sh $(DEB_PACKAGES)); \
	if [ -n "$$missing" ]; then echo "missing packages: $$missing"; $(MAKE) --no-print-directory deps; fi

# ------------------------------------------------------------------ tests
test: check-deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(PARITY_BIN) $(CUK_EMU_BIN) $(CUK_DEV_BIN) $(BENCH_INFER)
	@BUILD=$(BUILD) bash tests/run.sh

# The fast suites only (no PyTorch fixtures, no full test-data sweep).
test-fast: all $(UNIT_BIN) $(PARITY_BIN) $(CUK_EMU_BIN) $(CUK_DEV_BIN) $(BENCH_INFER)
	@BUILD=$(BUILD) OT_FAST=1 bash tests/run.sh

# Every torchvision family of tests/fixtures/make_family_tests.py, the slow
# ones included, then docs/models.md from the results.
test-models: check-deps all $(PARITY_BIN)
	@BUILD=$(BUILD) bash tests/cli/test_families.sh --all; rc=$$?; \
	    BUILD=$(BUILD) bash tests/cli/test_family_parity.sh --all || rc=1; \
	    $(MAKE) --no-print-directory models-table; exit $$rc

# docs/models.md from the last results of test-models and bench-models,
# merged into the results the table already records (a run of some families
# replaces their rows only)
models-table:
	@/usr/bin/python3 tools/gen_models_table.py --previous docs/models.md \
	    $(wildcard $(BUILD)/families/results.tsv) docs/models.md \
	    --parity $(BUILD)/families/parity.tsv --bench $(BUILD)/families/bench.tsv

# One full-mode training step per family, onnxtrain against PyTorch
# (tests/bench/bench_families.py; BENCH_MODELS_ARGS="--size 64 --batch 2" for
# a quick run), then docs/models.md. Publish figures from a quiet machine only.
BENCH_MODELS_ARGS ?= --size 224 --batch 8 --threads 2
bench-models: check-deps all
	@mkdir -p $(BUILD)/families
	@[ -f $(BUILD)/tiny_cifar/data_batch_1.bin ] || \
	    /usr/bin/python3 tests/fixtures/make_tiny_cifar.py $(BUILD)/tiny_cifar
	@/usr/bin/python3 tests/bench/bench_families.py $(BUILD)/onnxtrain $(BUILD)/tiny_cifar \
	    $(BUILD)/families/bench.tsv $(BENCH_MODELS_ARGS)
	@$(MAKE) --no-print-directory models-table

asan: check-deps
	@$(MAKE) --no-print-directory SAN=1 BUILD=build/asan all build/asan/test_unit \
	    build/asan/test_parity build/asan/test_kernels_emu
	@BUILD=build/asan OT_FAST=$${OT_FAST:-1} ASAN_OPTIONS=detect_leaks=1 bash tests/run.sh

debug:
	@$(MAKE) --no-print-directory DEBUG=1 BUILD=build/debug all

demo: check-deps all
	@OT_DEMO_PRECISION=$(PRECISION) bash models/demo.sh $(BUILD)

# the demo's steps 1-4 in fp32 and in bf16, and bf16's top-1 against fp32's
# spread over the seeds (build/demo-precision/precision.md)
demo-precision: check-deps all
	@bash models/demo_precision.sh $(BUILD)

# the ResNet-18 table (tests/bench/run.sh, docs/bench.md); FULL=1 at the first
# performance issue's sizes; ONLY=deploy or ONLY=dist run those sections
bench: check-deps all
	@BUILD=$(BUILD) OT_LDLIBS="$(JANSSON_LIBS) $(LDLIBS)" bash tests/bench/run.sh
	@case ",$(ONLY)," in *,deploy,*) $(MAKE) --no-print-directory bench-deploy ;; esac
	@case ",$(ONLY)," in *,dist,*) $(MAKE) --no-print-directory bench-dist ;; esac

# every section: the ResNet-18 table, deployment, distributed, threads under
# load, the per-family steps
bench-all: check-deps all
	@$(MAKE) --no-print-directory bench
	@$(MAKE) --no-print-directory bench-deploy
	@$(MAKE) --no-print-directory bench-dist
	@$(MAKE) --no-print-directory bench-load
	@$(MAKE) --no-print-directory bench-models

# onnxruntime's int8 against float32 speed and convert's against python onnx
# (tests/bench/bench_deploy.py)
bench-deploy: check-deps all
	@BUILD=$(BUILD) /usr/bin/python3 tests/bench/bench_deploy.py

# threads under load: onnxtrain's and PyTorch's training loop alone and beside
# a competing single-threaded process (tests/bench/bench_load.py)
bench-load: check-deps all
	@BUILD=$(BUILD) /usr/bin/python3 tests/bench/bench_load.py

# the distributed section (tests/bench/bench_dist.sh)
bench-dist: check-deps all
	@BUILD=$(BUILD) bash tests/bench/bench_dist.sh

# Downloads a pretrained model of the ONNX model zoo (models/zoo_manifest.json)
# to $(DEST)/NAME.onnx, checking its SHA-256. Needs curl and internet access;
# the onnxtrain program itself never downloads.
DEST ?= $(BUILD)/zoo
fetch-model:
	@if [ -z "$(NAME)" ]; then echo "usage: make fetch-model NAME=<model> [DEST=dir]; names: onnxtrain zoo" >&2; exit 2; fi
	@bash tools/fetch_model.sh "$(NAME)" "$(DEST)"

# FUZZ_TARGETS picks the harnesses (tests/fuzz/fuzz_<name>.c); each runs for
# FUZZ_SECONDS (tests/fuzz/run.sh), one after the other.
FUZZ_TARGETS ?= import checkpoint data image
fuzz: check-deps
	@$(MAKE) --no-print-directory CC=clang BUILD=$(BUILD)/fuzz \
	    OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	    $(BUILD)/fuzz/libonnxtrain.a
	@set -e; for t in $(FUZZ_TARGETS); do \
	    clang -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	        -Iinclude -Isrc -I$(BUILD)/fuzz/gen \
	        tests/fuzz/fuzz_$$t.c $(BUILD)/fuzz/libonnxtrain.a $(LDLIBS) \
	        -o $(BUILD)/fuzz/fuzz_$$t; \
	done
	@status=0; for t in $(FUZZ_TARGETS); do \
	    bash tests/fuzz/run.sh $(BUILD)/fuzz/fuzz_$$t $(BUILD) || status=1; \
	done; exit $$status

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/share/onnxtrain
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/onnxtrain
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/libonnxtrain.a
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/libonnxtrain.so.0
	ln -sf libonnxtrain.so.0 $(DESTDIR)$(PREFIX)/lib/libonnxtrain.so
	install -m 644 include/onnxtrain.h $(DESTDIR)$(PREFIX)/include/onnxtrain.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|'$$(sed -n 's/^#define OT_VERSION_STRING "\(.*\)"/\1/p' include/onnxtrain.h)'|g' \
	    -e 's|@CUDA_LIBS@|$(if $(filter 1,$(CUDA)), -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++)|' \
	    onnxtrain.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/onnxtrain.pc
	install -m 644 models/zoo_manifest.json $(DESTDIR)$(PREFIX)/share/onnxtrain/zoo_manifest.json
	$(if $(MPI_SHIM),install -d $(DESTDIR)$(PREFIX)/lib/onnxtrain && \
	    install -m 755 $(MPI_SHIM) $(DESTDIR)$(PREFIX)/lib/onnxtrain/libonnxtrain_mpi.so)
	install -d $(DESTDIR)$(PREFIX)/share/onnxtrain/runtimes
	install -m 644 tools/runtimes/verify_ort.js tools/runtimes/verify_opencv.py \
	    $(DESTDIR)$(PREFIX)/share/onnxtrain/runtimes/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/onnxtrain $(DESTDIR)$(PREFIX)/lib/libonnxtrain.* \
	    $(DESTDIR)$(PREFIX)/include/onnxtrain.h $(DESTDIR)$(PREFIX)/lib/pkgconfig/onnxtrain.pc \
	    $(DESTDIR)$(PREFIX)/share/onnxtrain/zoo_manifest.json \
	    $(DESTDIR)$(PREFIX)/lib/onnxtrain/libonnxtrain_mpi.so
	rm -rf $(DESTDIR)$(PREFIX)/share/onnxtrain/runtimes
	rmdir $(DESTDIR)$(PREFIX)/share/onnxtrain $(DESTDIR)$(PREFIX)/lib/onnxtrain 2>/dev/null || true

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
