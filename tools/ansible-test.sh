#!/usr/bin/env bash
# Run ansible-test on a copy of the collection laid out the way ansible-test
# wants it (…/ansible_collections/pyweb/stack), outside this git checkout so
# ansible-test does not take the checkout's .gitignore for the collection's.
#   tools/ansible-test.sh sanity|integration [ansible-test arguments]
# Both run --local on this machine's Python.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command=${1:?usage: ansible-test.sh sanity|integration [args]}
shift
python=${PYWEB_ANSIBLE_TEST_PYTHON:-3.11}

# ansible-test bootstraps pip in its virtualenvs with a get-pip script it
# downloads from a host that is not reachable here; it uses a cached copy when
# present. Put ours there for every pip version this ansible-test may ask for.
cache="$HOME/.ansible/test/cache"
mkdir -p "$cache"
reqs=$(python3 -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))')
grep -o "pip='[0-9.]*'" "$reqs" | grep -o "[0-9][0-9.]*" | sort -u | while read -r version; do
  target="$cache/get_pip_${version//./_}.py"
  cmp -s "$root/tools/get_pip_offline.py" "$target" || cp "$root/tools/get_pip_offline.py" "$target"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/pyweb-ansible-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/pyweb/stack"
mkdir -p "$dest"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf -) | tar -xf - -C "$dest"
cd "$dest"
ansible-test "$command" --local --python "$python" --color no "$@"
