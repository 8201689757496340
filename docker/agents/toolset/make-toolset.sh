#!/bin/sh
# Run once at image build, as root, in a Debian stage: assembles /opt/jetty, the part of the agent
# layer every runtime shares. It is mounted read-only into sandboxes whose environment may be any
# glibc image, so nothing here may rely on what the environment has beyond glibc itself:
#   bin/busybox   static: the holder (sleep), the entrypoint's shell, the environment probe
#   bin/node      Node for the forwarder (and the Node-based CLIs)
#   tools/        GNU head, tar and find: the driver places files and collects results with them
#   lib/          the shared libraries those need besides glibc; every binary here finds them
#                 through its RPATH, so nothing leaks into the environment (no LD_LIBRARY_PATH)
#   GLIBC_MIN     the newest glibc symbol version any binary here needs: the probe refuses an
#                 environment with an older glibc
set -eu
out=/opt/jetty
mkdir -p "$out/bin" "$out/tools" "$out/lib"
install -m 0755 /bin/busybox "$out/bin/busybox"
install -m 0755 "$(command -v node)" "$out/bin/node"
for t in head tar find; do install -m 0755 "$(command -v "$t")" "$out/tools/$t"; done

# glibc's own libraries come from the environment; everything else a binary links is bundled.
bundle_libs() {
  ldd "$1" | awk '/=> \//{print $3}' | while read -r lib; do
    case "$(basename "$lib")" in
      libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libresolv.so.*|libutil.so.*) ;;
      *) [ -e "$out/lib/$(basename "$lib")" ] || cp -L "$lib" "$out/lib/" ;;
    esac
  done
}
for b in "$out/bin/node" "$out"/tools/*; do bundle_libs "$b"; done
# RPATH (not RUNPATH) also serves the libraries' own dependencies (libselinux -> libpcre2).
for b in "$out/bin/node" "$out"/tools/* "$out"/lib/*; do
  patchelf --force-rpath --set-rpath "$out/lib" "$b"
done
"$out/tools/tar" --version >/dev/null
"$out/bin/node" --version >/dev/null
