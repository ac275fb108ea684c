#!/usr/bin/env python3
# usage: cgtree.py TREEFILE REGEX [REQUESTS] [--callers]
# Callees (or, with --callers, callers) of the functions matching REGEX, with inclusive cost
# divided by REQUESTS (per export), from `callgrind_annotate --tree=calling|caller --inclusive=yes`.
import sys, re
args = [a for a in sys.argv[1:] if a != '--callers']
callers = '--callers' in sys.argv
tree, rx = args[0], re.compile(args[1])
n = int(args[2]) if len(args) > 2 else 1
mark = '<' if callers else '>'
def short(s):
    return re.sub(r'\[/.*?\]', '', s).strip()[:150]
for block in open(tree).read().split('\n\n'):
    lines = [l for l in block.split('\n') if l.strip()]
    star = [l for l in lines if '*  ' in l]
    if not star or not rx.search(star[0]):
        continue
    print('==', short(star[0].split('*', 1)[1]), int(star[0].split()[0].replace(',', '')) // n)
    for l in lines:
        if mark in l and '*  ' not in l:
            c = int(l.split()[0].replace(',', ''))
            if c // n >= 20:
                print('   %6d  %s' % (c // n, short(l.split(mark, 1)[1])))
