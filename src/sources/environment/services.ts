/**
 * Docker Flow Proxy's services from the environment: DFP_SERVICE_<PARAM> declares one service and
 * DFP_SERVICE_<n>_<PARAM> the n-th of several, with the reconfigure parameters in upper snake
 * case (DFP_SERVICE_SERVICE_NAME=go-demo, DFP_SERVICE_SERVICE_PATH=/demo, DFP_SERVICE_PORT=8080).
 * They are routed from start-up like services sent by hand.
 */
import { parseServiceParams } from '../../routes/params.js';
import type { ParseContext } from '../../routes/params.js';
import type { Service } from '../../routes/model.js';

export interface EnvironmentService {
  readonly service: Service;
  readonly params: Readonly<Record<string, string>>;
  /** The variables' common prefix, for messages: DFP_SERVICE_ or DFP_SERVICE_2_. */
  readonly prefix: string;
}

export class EnvironmentServiceError extends Error {}

const VARIABLE = /^DFP_SERVICE_(?:([0-9]{1,3})_)?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)$/;

/** SERVICE_PATH -> servicePath. */
function parameterName(snake: string): string {
  return snake
    .toLowerCase()
    .split('_')
    .map((part, i) => (i === 0 ? part : `${part.charAt(0).toUpperCase()}${part.slice(1)}`))
    .join('');
}

export function environmentServices(env: Readonly<Record<string, string | undefined>>, context?: ParseContext): EnvironmentService[] {
  const groups = new Map<string, Record<string, string>>();
  for (const [variable, value] of Object.entries(env)) {
    if (!variable.startsWith('DFP_SERVICE_') || value === undefined) continue;
    const match = VARIABLE.exec(variable);
    if (match === null) {
      throw new EnvironmentServiceError(`${variable}: use DFP_SERVICE_<PARAMETER> or DFP_SERVICE_<n>_<PARAMETER>, the parameter in upper snake case (DFP_SERVICE_SERVICE_PATH=/demo)`);
    }
    const prefix = match[1] === undefined ? 'DFP_SERVICE_' : `DFP_SERVICE_${match[1]}_`;
    let params = groups.get(prefix);
    if (params === undefined) groups.set(prefix, (params = {}));
    params[parameterName(match[2] as string)] = value;
  }
  const services: EnvironmentService[] = [];
  for (const [prefix, params] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const parsed = parseServiceParams(params, context);
    if (!parsed.ok) {
      const variable = `${prefix}${parsed.error.parameter.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
      throw new EnvironmentServiceError(`the service declared by ${prefix}* is refused (${variable}): ${parsed.error.message}`);
    }
    services.push({ service: parsed.service, params: parsed.params, prefix });
  }
  return services;
}
