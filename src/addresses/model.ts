/**
 * Backend addresses are owned by the control plane: one resolver turns the host names the route
 * table needs (a service's VIP name, `tasks.NAME`, an outboundHostname) into IPv4 addresses, and
 * every data plane reads from it. The HAProxy plane pushes what changes through its runtime API;
 * the built-in plane reads the current list on each request.
 */

/** A host name that a data plane needs addresses for, and how many addresses it may use. */
export interface WantedName {
  readonly name: string;
  readonly limit: number;
}

/** Addresses of the Swarm tasks of services, kept current by the Engine API (sources/swarm/tasks.ts). */
export interface TaskAddressSource {
  /** Resolves once the first task listing is in; rejects when the Engine API cannot be reached. */
  start(): Promise<void>;
  /**
   * Addresses of the running tasks of `service` on the networks the proxy can reach, sorted;
   * undefined when the Engine API is not reachable now or the service is unknown to it (callers
   * then fall back to DNS).
   */
  tasksOf(service: string): readonly string[] | undefined;
  /** Called (without arguments, coalesced) after each listing that changed some service's addresses. */
  onChange(listener: () => void): void;
  stop(): void;
}
