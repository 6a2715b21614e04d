#!/bin/sh
# A stock Django project in a git repository, then exactly the edits
# docs/deploying-apps.md tells a user to make, as a second commit.
# Usage: create_repo.sh REPO FILES  (django-admin on PATH; FILES holds
# settings.py.append and requirements.txt)
set -eu
repo=$1
files=$2

mkdir -p "$repo"
django-admin startproject mysite "$repo"
cd "$repo"
git init --quiet --initial-branch main
git add --all
git -c user.name=pyweb -c user.email=pyweb@localhost commit --quiet -m "django-admin startproject mysite"

# "Settings from the environment"
sed -i "/^SECRET_KEY = 'django-insecure-/d" mysite/settings.py
printf '\n\n' >> mysite/settings.py
cat "$files/settings.py.append" >> mysite/settings.py
# "requirements.txt"
cp "$files/requirements.txt" requirements.txt
git add --all
git -c user.name=pyweb -c user.email=pyweb@localhost commit --quiet -m "Production settings from the environment, requirements"
