/**
 * Docker Flow Proxy's GET /v1/docker-flow-proxy/metrics: HAProxy's statistics as CSV (the format
 * of `show stat` and of the stats page's ";csv"), which Docker Flow Proxy served from HAProxy.
 * Both planes answer with HAProxy 2.6's columns and one BACKEND row per service destination,
 * named as Docker Flow Proxy named its backends (SERVICE-bePORT); columns Flow Proxy has no
 * figure for are empty, as HAProxy leaves columns that do not apply.
 */
import { STATUS_CLASSES } from './metrics.js';
import type { TrafficSeries } from './metrics.js';

export const STAT_COLUMNS = (
  'pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,' +
  'chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,' +
  'check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,' +
  'srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,' +
  'agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo'
).split(',');

export interface DestinationStats {
  readonly service: string;
  readonly port: number;
  readonly replicas: number;
  /** undefined: no traffic yet. */
  readonly traffic: TrafficSeries | undefined;
}

export function statsCsv(rows: readonly DestinationStats[]): string {
  const lines = [`# ${STAT_COLUMNS.join(',')},`];
  for (const row of rows) {
    const fields = new Map<string, string | number>([
      ['pxname', `${row.service}-be${row.port}`],
      ['svname', 'BACKEND'],
      ['stot', row.traffic?.requests ?? 0],
      ['bin', row.traffic?.bytesIn ?? 0],
      ['bout', row.traffic?.bytesOut ?? 0],
      ['status', row.replicas > 0 ? 'UP' : 'DOWN'],
      ['act', row.replicas],
      ['bck', 0],
      ['type', 1],
      ['req_tot', row.traffic?.requests ?? 0],
      ['mode', 'http'],
      ['algo', 'roundrobin'],
    ]);
    STATUS_CLASSES.forEach((code, i) => fields.set(`hrsp_${code}`, row.traffic?.responses[i] ?? 0));
    lines.push(`${STAT_COLUMNS.map((column) => fields.get(column) ?? '').join(',')},`);
  }
  return `${lines.join('\n')}\n`;
}
