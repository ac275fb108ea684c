#!/usr/bin/env python3
# usage: callers.py TREEFILE REGEX [N]: callers (inclusive cost /N per request) of functions matching REGEX
import sys,re
tree,rx=sys.argv[1],re.compile(sys.argv[2]); n=int(sys.argv[3]) if len(sys.argv)>3 else 7688
blocks=open(tree).read().split('\n\n')
def short(s):
    s=re.sub(r'\[/.*?\]','',s).strip(); return s[:150]
for b in blocks:
    lines=[l for l in b.split('\n') if l.strip()]
    star=[l for l in lines if '*  ' in l]
    if not star or not rx.search(star[0]): continue
    print('==', short(star[0].split('*',1)[1]), int(star[0].split()[0].replace(',',''))//n)
    for l in lines:
        if '<' in l and '*  ' not in l:
            c=int(l.split()[0].replace(',',''))
            if c//n>=20: print('   %6d  %s'%(c//n, short(l.split('<',1)[1])))
