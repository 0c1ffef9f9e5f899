# utcp — one non-recursive Makefile.
#   make            build/libutcp.so build/utcpd build/utcp
#   make SAN=1      the same with ASan+UBSan (into build-san/)
#   make check      every test: unit, engine purity, end to end
#   make demo       curl through the engine, traced (needs root)
#   make bench      side-by-side benchmarks (needs root; BENCH_ARGS=--help)
#   make install    PREFIX=/usr/local DESTDIR=

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
SAN     ?= 0

ifeq ($(SAN),1)
B       := build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B       := build
SANFLAGS :=
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) $(SANFLAGS) -D_GNU_SOURCE -MMD -MP
LDFLAGS += $(SANFLAGS)

ENGINE_SRC  := $(wildcard engine/*.c)
PRELOAD_SRC := $(wildcard preload/*.c) tools/ipc.c
UTCPD_SRC   := $(wildcard tools/utcpd/*.c) tools/ipc.c
UTCP_SRC    := $(wildcard tools/utcp/*.c) tools/ipc.c
UNIT_SRC    := $(wildcard tests/unit/test_*.c)

ENGINE_OBJ  := $(ENGINE_SRC:%.c=$(B)/obj/%.o)
PRELOAD_OBJ := $(PRELOAD_SRC:%.c=$(B)/pic/%.o)
UTCPD_OBJ   := $(UTCPD_SRC:%.c=$(B)/obj/%.o)
UTCP_OBJ    := $(UTCP_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

all: $(B)/libutcp.so $(B)/utcpd $(B)/utcp

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iengine -Itools -c $< -o $@

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -Itools -c $< -o $@

$(B)/libutcpengine.a: $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The preload keeps its own libc bindings; no sanitizer runtime can be
# preloaded after libc, so the preload is never built with SAN.
$(B)/libutcp.so: $(PRELOAD_SRC)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -fPIC -fvisibility=hidden -shared -Itools \
	  -o $@ $(PRELOAD_SRC) -ldl -lpthread

$(B)/utcpd: $(UTCPD_OBJ) $(B)/libutcpengine.a
	$(CC) $(LDFLAGS) -o $@ $^ -lbsd

$(B)/utcp: $(UTCP_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ -lbsd

$(B)/tests/%: tests/unit/%.c $(B)/libutcpengine.a $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iengine -Itools -Itests/unit -o $@ $< $(B)/libutcpengine.a $(LDFLAGS) -lbsd

# The engine core makes no syscalls and reads no clock (DESIGN.md, 2).
FORBIDDEN := clock_gettime gettimeofday time read write send recv sendto recvfrom \
	socket open close ioctl poll epoll_wait select getrandom rand random srand \
	printf fprintf puts malloc_stats sleep usleep nanosleep pthread_create \
	exit _exit abort syscall
check-purity: $(B)/libutcpengine.a
	@bad=$$(nm -u $< | awk '{print $$2}' | sed 's/@.*//' | grep -xF -e $(shell echo $(FORBIDDEN) | sed 's/ / -e /g') || true); \
	if [ -n "$$bad" ]; then echo "engine calls forbidden symbols: $$bad"; exit 1; fi; \
	echo "engine purity: ok (no syscalls, clocks or stdio in $(notdir $<))"

check-unit: $(UNIT_BIN)
	@tests/run-unit $(UNIT_BIN)

check-e2e: all
	@tests/run-e2e

check: all check-purity check-unit pkt pkt-selftest pdshim-check check-e2e

demo: all
	tools/demo

# Installs its tools (bench/deps), then measures: bench/run --help.
bench: all
	bench/deps
	bench/run $(BENCH_ARGS)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin
	install -m 0644 $(B)/libutcp.so $(DESTDIR)$(PREFIX)/lib/libutcp.so
	install -m 0755 $(B)/utcp $(DESTDIR)$(PREFIX)/bin/utcp
	install -m 0755 $(B)/utcpd $(DESTDIR)$(PREFIX)/sbin/utcpd

clean:
	rm -rf build build-san

.PHONY: all check check-purity check-unit check-e2e demo bench install clean
-include $(shell find $(B) -name '*.d' 2>/dev/null)
-include tests/pkt/pkt.mk
