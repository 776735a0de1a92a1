"""Module cycles of one crate: the `crate::` imports between its top-level
modules (test modules left out), and the strongly connected components
among them (a cycle: modules that import each other, directly or not).
usage: python3 ci/module-cycles.py crates/server/src   (prints SCCs: [] when none)"""
import os,re,sys,collections
root=sys.argv[1]
tops=set()
for f in os.listdir(root):
    if f.endswith('.rs') and f not in('lib.rs','main.rs'): tops.add(f[:-3])
    elif os.path.isdir(os.path.join(root,f)): tops.add(f)
edges=collections.defaultdict(lambda: collections.defaultdict(set))
def top_of(path):
    rel=os.path.relpath(path,root)
    return rel.split('/')[0].replace('.rs','')
for d,_,fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        p=os.path.join(d,f); t=top_of(p)
        if t in ('lib','main'): continue
        src=open(p).read()
        # strip tests module crudely
        i=src.find('#[cfg(test)]')
        if i>=0: src=src[:i]
        for m in re.finditer(r'crate::(\w+)',src):
            u=m.group(1)
            if u in tops and u!=t: edges[t][u].add(os.path.relpath(p,root))
        # grouped: use crate::{a, b::c}
        for m in re.finditer(r'crate::\{([^}]*(?:\{[^}]*\}[^}]*)*)\}',src):
            for u in re.findall(r'(?:^|[,{\s])(\w+)',m.group(1)):
                if u in tops and u!=t: edges[t][u].add(os.path.relpath(p,root))
for t in sorted(edges):
    print(t,'->',', '.join(sorted(edges[t])))
# cycles: SCCs
import itertools
idx={};low={};st=[];on=set();out=[];c=[0]
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        comp=[]
        while True:
            w=st.pop();on.discard(w);comp.append(w)
            if w==v:break
        if len(comp)>1: out.append(comp)
for v in list(tops):
    if v not in idx: sc(v)
print('SCCs:',out)
