# The environment probe, run by the agent layer's static busybox as the sandbox user, before any
# agent starts in an environment image never seen before (the worker caches the answer per image
# and agent layer). One line per fact:
#   sh yes|no                   the environment has /bin/sh (the agent's tools need a shell)
#   glibc <version>|none        its glibc, from its dynamic loader
#   unresolved <file> <reason>  a program of the agent layer its loader cannot resolve
#   cmd <name>                  a command on the environment's PATH (its inventory)
jetty=/opt/jetty
bb=$jetty/bin/busybox
if [ -x /bin/sh ]; then echo "sh yes"; else echo "sh no"; fi
ld=""
for c in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do [ -e "$c" ] && { ld=$c; break; }; done
if [ -z "$ld" ]; then
  echo "glibc none"
else
  v=$("$ld" --version 2>/dev/null | "$bb" head -1 | "$bb" sed -n 's/.* version \([0-9][0-9.]*\)\.*$/\1/p')
  echo "glibc ${v:-unknown}"
  if [ -f "$jetty/ELF_LIST" ]; then
    while read -r f; do
      out=$("$ld" --list "$f" 2>&1) || {
        echo "unresolved $f $(echo "$out" | "$bb" grep -m1 -i 'not found\|error' | "$bb" tr -s ' \t' ' ')"; }
    done <"$jetty/ELF_LIST"
  fi
fi
IFS=:
for d in $PATH; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    [ -f "$f" ] && [ -x "$f" ] && echo "cmd ${f##*/}"
  done
done
exit 0
