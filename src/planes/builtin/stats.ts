/**
 * Docker Flow Proxy's statistics page (STATS_USER / STATS_PASS / STATS_URI) on the built-in
 * plane: requests per destination, behind basic auth.
 */
import type http from 'node:http';
import { authorized } from '../../api/auth.js';
import type { StatsSettings } from '../../settings/settings.js';
import type { Target } from './proxy.js';
import { plainAnswer } from './proxy.js';

export class StatsPage {
  readonly uri: string;

  constructor(private readonly settings: StatsSettings) {
    this.uri = settings.uri;
  }

  answer(req: http.IncomingMessage, res: http.ServerResponse, targets: Iterable<Target>): void {
    if (!authorized(req.headers.authorization, { token: undefined, basic: { user: this.settings.user, pass: this.settings.pass } })) {
      res.setHeader('www-authenticate', 'Basic realm="Flow Proxy"');
      plainAnswer(res, 401, 'statistics need the STATS_USER / STATS_PASS credentials\n');
      return;
    }
    const lines = ['# service destination port requests'];
    for (const target of targets) {
      lines.push(`${target.service.name} ${target.destination.index} ${target.port} ${target.traffic.requests}`);
    }
    plainAnswer(res, 200, `${lines.join('\n')}\n`);
  }
}
