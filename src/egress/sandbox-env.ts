import { PROXY_USER } from './proxy.js';

/**
 * The variables that send a sandbox's tools through the egress proxy: the forwarder's port, with
 * the run's egress token as the proxy password (never the provider token). NO_PROXY keeps the
 * model calls, which go to the same forwarder in origin form, off the proxy.
 *
 * pip, uv, npm, curl, wget, git, requests and the agent CLIs read these. Node's own fetch does
 * not unless NODE_USE_ENV_PROXY=1 (Node 22.21+; experimental, it prints a warning): not set here,
 * a script that wants it sets it.
 */
export function sandboxProxyEnv(token: string, port: number): Record<string, string> {
  const url = `http://${PROXY_USER}:${token}@127.0.0.1:${port}`;
  const local = '127.0.0.1,localhost';
  return {
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    NO_PROXY: local,
    no_proxy: local,
  };
}
