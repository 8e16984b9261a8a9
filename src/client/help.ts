/** Help texts of the client commands (docs/cli.md has the same with examples). */

export const COMMANDS = ['routes', 'reconfigure', 'remove', 'status'] as const;
export type Command = (typeof COMMANDS)[number];

const OPTIONS = `Options (environment variable in brackets):
  --api URL          the proxy's control API [FLOW_PROXY_API] (http://127.0.0.1:$API_PORT or :8080)
  --api-token TOKEN  send Authorization: Bearer TOKEN [API_TOKEN]
  --api-user USER    send basic auth [API_USER] (with --api-pass PASS [API_PASS])
  --timeout N        seconds to wait for the proxy's answer (30)
  --json             print the API's JSON reply instead of a table or a line
  -h, --help         this help`;

const EXIT_CODES = `Exit codes: 0 done; 1 the proxy refused the request (its message on stderr);
2 usage error; 3 cannot reach the proxy (connection refused, timeout).`;

/** Appended to the proxy's own --help. */
export const COMMANDS_SUMMARY = `Commands (flow-proxy help for their options, exit codes and environment):
  flow-proxy listener                  run the Swarm Listener drop-in (docs/swarm.md)
  flow-proxy routes                    the route table of a running proxy
  flow-proxy reconfigure KEY=VALUE...  add or replace the routes of a service
  flow-proxy remove NAME               stop routing a service
  flow-proxy status                    the data plane's state and counters`;

export const GENERAL_HELP = `Usage: flow-proxy [options]            run the proxy (flow-proxy --help lists its options)
       flow-proxy listener             run the Swarm Listener drop-in (docs/swarm.md)
       flow-proxy COMMAND [options]    call the control API of a running proxy

Commands:
  routes                    the route table: one row per service destination
  reconfigure KEY=VALUE...  add or replace the routes of a service
  remove NAME               stop routing a service
  status                    the data plane: kind, ready, table version, counters
  help [COMMAND]            this help, or a command's

${OPTIONS}

${EXIT_CODES}
See docs/cli.md.`;

export const COMMAND_HELP: Readonly<Record<Command, string>> = {
  routes: `Usage: flow-proxy routes [options]

The route table of the running proxy, one row per service destination: service, source (api:
sent through the API, swarm: from com.df.* labels), paths, domains, port and address mode
(default: the proxy's --address-mode). --json prints the reply of
GET /v1/docker-flow-proxy/config?type=json: the services keyed by name.

${OPTIONS}

${EXIT_CODES}`,
  reconfigure: `Usage: flow-proxy reconfigure KEY=VALUE... [options]

Adds or replaces the routes of a service: GET /v1/docker-flow-proxy/reconfigure with these
parameters (docs/parameters.md). Give each KEY once: lists are comma-separated
(serviceDomain=a.com,b.com) and further destinations are indexed (servicePath.1=/admin port.1=9090).
Prints one line naming the routes, or the proxy's reason for refusing them.

  flow-proxy reconfigure serviceName=go-demo servicePath=/demo port=8080

${OPTIONS}

${EXIT_CODES}`,
  remove: `Usage: flow-proxy remove NAME [options]

Stops routing the service NAME: GET /v1/docker-flow-proxy/remove?serviceName=NAME. Succeeds as
well when the service had no routes.

${OPTIONS}

${EXIT_CODES}`,
  status: `Usage: flow-proxy status [options]

The data plane of the running proxy: its kind (haproxy or builtin), whether it serves (ready),
the version of the route table it serves, its last error and its counters (reloads, runtime
updates, ...). Exits with 1 when the plane is not ready, after printing its state.

${OPTIONS}

${EXIT_CODES}`,
};
