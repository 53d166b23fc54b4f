import { PgArchiveStore } from '/work/main/dist/src/archive/pg-store.js';
import { Db, parsePostgresUrl } from '/work/main/dist/src/postgres/db.js';
import { migrate } from '/work/main/dist/src/postgres/schema.js';
const schema='strata_exp_load';
const db = new Db(parsePostgresUrl(`postgres://postgres@127.0.0.1:5432/postgres?schema=${schema}`)).acquire();
await migrate(db);
const store = new PgArchiveStore({ db, embeddingEncoding: 'int8' });
const ref={tenant:'bench',sessionId:'long-0'};
const words='the quick brown fox jumps over lazy dogs while coding in typescript and postgres'.split(' ');
let seed=1; const rnd=()=>{seed=(seed*1103515245+12345)%2147483648; return seed/2147483648;};
if ((await store.read(ref)).length===0) {
  const turns=[]; for(let i=1;i<=1000;i++){ let c=''; const n=20+Math.floor(rnd()*150); for(let k=0;k<n;k++) c+=words[Math.floor(rnd()*words.length)]+(rnd()<0.1?String(Math.floor(rnd()*1000)):'')+' ';
    turns.push({turnId:i,role:i%2?'user':'assistant',content:c,createdAt:1700000000000+i*1000,embedding:Float32Array.from({length:384},()=>rnd()*2-1)}); }
  for(let k=0;k<1000;k+=100) await store.append(ref, turns.slice(k,k+100), {embedderId:'pseudo-384'});
  await store.compact(ref);
}
const { rows: segs } = await db.query(`select count(*)::int n, sum(length(record))::int b from archive_segments where tenant='bench' and session_id='long-0'`);
console.log(segs[0]);
const q=[],full=[];
for(let i=0;i<205;i++){
  let t0=performance.now();
  await db.query(`SELECT record FROM archive_segments WHERE tenant = $1 AND session_id = $2 ORDER BY seq`, ['bench','long-0']);
  let t1=performance.now();
  await store.read(ref);
  let t2=performance.now();
  if(i>=5){q.push(t1-t0);full.push(t2-t1);}
}
const p=(a,x)=>a.sort((m,n)=>m-n)[Math.floor(a.length*x)];
console.log('query p50',p(q,.5).toFixed(2),'p99',p(q,.99).toFixed(2),' read p50',p(full,.5).toFixed(2),'p99',p(full,.99).toFixed(2));
await db.release();
