# tests/pkt/pkt.mk — packet scripts at virtual time, and the packetdrill shim.
# Included from the top-level Makefile (`include tests/pkt/pkt.mk`); uses its
# $(B), $(CC), $(CFLAGS), $(LDFLAGS), $(WARN) and $(ENGINE_SRC).
#
#   make pkt            run every tests/pkt/**/*.pkt; ends "N passed, N failed"
#   make pkt PKT=tests/pkt/keepalive      only the scripts under a folder/file
#   make pkt-verbose PKT=tests/pkt/x.pkt  one script with a full trace
#   make pkt-selftest   the runner must catch deliberate mistakes
#   make pdshim         build/libutcp_packetdrill.so
#   make pdshim-check   the packetdrill driver plays a session through the shim

PKT          ?= tests/pkt
PKT_RUNNER   := $(B)/pkt-runner
PKT_SRC      := tests/pkt-runner/runner.c tests/pkt-runner/script.c tests/pkt-runner/wire.c
PKT_HDR      := $(wildcard tests/pkt-runner/*.h)
PDSHIM       := $(B)/libutcp_packetdrill.so
PDSHIM_SRC   := $(wildcard tools/packetdrill/*.c)
PD_DRIVER    := $(B)/pd-driver

$(PKT_RUNNER): $(PKT_SRC) $(PKT_HDR) $(B)/libutcpengine.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iengine -Itests/pkt-runner -o $@ $(PKT_SRC) $(B)/libutcpengine.a $(LDFLAGS)

pkt: $(PKT_RUNNER)
	@$(PKT_RUNNER) $$(find $(PKT) -name '*.pkt' | LC_ALL=C sort)

# The runner's own check: scripts that must fail, with the message given.
pkt-selftest: $(PKT_RUNNER)
	@tests/pkt-runner/selftest/check.sh $(PKT_RUNNER) tests/pkt-runner/selftest/*.pkt

pkt-verbose: $(PKT_RUNNER)
	$(PKT_RUNNER) -v $$(find $(PKT) -name '*.pkt' | LC_ALL=C sort)

# The shim carries its own PIC copy of the engine, hidden inside the .so, and
# never a sanitizer runtime (packetdrill dlopen()s it).
$(PDSHIM): $(PDSHIM_SRC) $(wildcard tools/packetdrill/*.h) $(ENGINE_SRC) $(wildcard engine/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -fPIC -fvisibility=hidden -shared \
	  -Iengine -Itools/packetdrill -o $@ $(PDSHIM_SRC) $(ENGINE_SRC) -lpthread

$(PD_DRIVER): tests/pkt-runner/pd_driver.c tests/pkt-runner/wire.c $(PKT_HDR) $(wildcard tools/packetdrill/*.h)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -Itests/pkt-runner -Itools/packetdrill \
	  -o $@ tests/pkt-runner/pd_driver.c tests/pkt-runner/wire.c -ldl -lpthread

pdshim: $(PDSHIM)

pdshim-check: $(PDSHIM) $(PD_DRIVER)
	@timeout 60 $(PD_DRIVER) $(PDSHIM)

.PHONY: pkt pkt-selftest pkt-verbose pdshim pdshim-check
