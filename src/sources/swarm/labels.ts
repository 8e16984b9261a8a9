/**
 * Docker Flow Swarm Listener's convention: a service labelled `com.df.notify=true` is routed from
 * its `com.df.<reconfigure parameter>` labels, which carry the API's parameter names (indexed
 * ones included: `com.df.servicePath.1`). The service's own name is the default serviceName.
 */
export const NOTIFY_LABEL = 'com.df.notify';
const PREFIX = 'com.df.';

/** Labels -> reconfigure parameters; the notify label itself is the Listener's switch, not a parameter. */
export function paramsFromLabels(serviceName: string, labels: Readonly<Record<string, string>>, notifyLabel = NOTIFY_LABEL): Record<string, string> {
  const params: Record<string, string> = { serviceName };
  for (const [label, value] of Object.entries(labels)) {
    if (!label.startsWith(PREFIX) || label === notifyLabel) continue;
    params[label.slice(PREFIX.length)] = value;
  }
  return params;
}
