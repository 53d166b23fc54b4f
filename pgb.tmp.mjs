import pg from 'pg';
const c = new pg.Client({connectionString:'postgres://postgres@127.0.0.1:5432/postgres'});
await c.connect();
await c.query('set search_path=strata_exp_load');
const variants = {
  hex: {text:`SELECT record FROM archive_segments WHERE tenant = $1 AND session_id = $2 ORDER BY seq`, post:(r)=>r.rows[0].record},
  b64: {text:`SELECT encode(record,'base64') AS record FROM archive_segments WHERE tenant = $1 AND session_id = $2 ORDER BY seq`, post:(r)=>Buffer.from(r.rows[0].record,'base64')},
  len: {text:`SELECT length(record) AS record FROM archive_segments WHERE tenant = $1 AND session_id = $2 ORDER BY seq`, post:(r)=>r.rows[0].record},
};
const res={};
for (const k of Object.keys(variants)) res[k]=[];
let ref;
for(let i=0;i<105;i++){
  for (const [k,v] of Object.entries(variants)) {
    const t0=performance.now();
    const out=v.post(await c.query({text:v.text, values:['bench','long-0']}));
    const t1=performance.now();
    if(i==0){ if(k==='hex') ref=out; else if(Buffer.isBuffer(out)) console.log(k,'equal',Buffer.compare(ref,out)===0); }
    if(i>=5) res[k].push(t1-t0);
  }
}
const p=(a,x)=>a.sort((m,n)=>m-n)[Math.floor(a.length*x)];
for (const [k,a] of Object.entries(res)) console.log(k,'p50',p(a,.5).toFixed(2),'p99',p(a,.99).toFixed(2));
await c.end();
