import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { zipOf } from './zip.js';

/**
 * A Python package index made in the test, for pip to install from without leaving this machine:
 * a pure-Python wheel written here (a zip, as a wheel is: the modules, and a dist-info with
 * METADATA, WHEEL and RECORD), and a PEP 503 "simple" index serving it on a loopback address.
 */

export interface Wheel {
  /** The project name as pip is asked for it (`jetty-textstats`). */
  project: string;
  version: string;
  /** `jetty_textstats-1.0.0-py3-none-any.whl` */
  filename: string;
  bytes: Uint8Array;
  sha256: string;
}

/** Base64url without padding, as RECORD writes a hash. */
const recordHash = (data: Buffer) => createHash('sha256').update(data).digest('base64url');

/** A pure-Python wheel of `files` (path in the wheel → text), tagged py3-none-any. */
export function makeWheel(project: string, version: string, files: Record<string, string>): Wheel {
  const dist = project.replace(/[-.]+/g, '_');
  const info = `${dist}-${version}.dist-info`;
  const entries: Record<string, string> = {
    ...files,
    [`${info}/METADATA`]: `Metadata-Version: 2.1\nName: ${project}\nVersion: ${version}\nSummary: made by a test\n`,
    [`${info}/WHEEL`]:
      'Wheel-Version: 1.0\nGenerator: jetty-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
  };
  const record = Object.entries(entries).map(([name, text]) => {
    const data = Buffer.from(text, 'utf8');
    return `${name},sha256=${recordHash(data)},${data.length}`;
  });
  entries[`${info}/RECORD`] = `${[...record, `${info}/RECORD,,`].join('\n')}\n`;
  const bytes = zipOf(entries);
  return {
    project,
    version,
    filename: `${dist}-${version}-py3-none-any.whl`,
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

export interface PackageIndex {
  server: Server;
  host: string;
  port: number;
  /** What pip's `--index-url` (or `PIP_INDEX_URL`) takes: `http://<host>:<port>/simple/`. */
  url: string;
  /** Paths requested, in order. */
  hits: string[];
  close(): Promise<void>;
}

/** PEP 503 normalised name: runs of `-`, `_`, `.` become one `-`, lower case. */
const normalise = (name: string) => name.toLowerCase().replace(/[-_.]+/g, '-');

const page = (title: string, links: string[]) =>
  `<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0"><title>${title}</title></head><body>\n${links.join('<br>\n')}\n</body></html>\n`;

/** A simple index of `wheels` on `host` (a loopback address), on a port of the system's choosing. */
export function servePackageIndex(host: string, wheels: Wheel[]): Promise<PackageIndex> {
  const hits: string[] = [];
  const byProject = new Map<string, Wheel[]>();
  for (const w of wheels)
    byProject.set(normalise(w.project), [...(byProject.get(normalise(w.project)) ?? []), w]);
  const files = new Map(wheels.map((w) => [w.filename, w]));
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://index').pathname;
    hits.push(path);
    const html = (status: number, body: string) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
      res.end(body);
    };
    if (path === '/simple/' || path === '/simple') {
      return html(
        200,
        page(
          'Simple index',
          [...byProject.keys()].map((p) => `<a href="/simple/${p}/">${p}</a>`),
        ),
      );
    }
    const project = /^\/simple\/([^/]+)\/?$/.exec(path)?.[1];
    if (project !== undefined) {
      const found = byProject.get(normalise(project));
      if (!found) return html(404, page('Not found', []));
      return html(
        200,
        page(
          `Links for ${project}`,
          found.map((w) => `<a href="/files/${w.filename}#sha256=${w.sha256}">${w.filename}</a>`),
        ),
      );
    }
    const file = /^\/files\/([^/]+)$/.exec(path)?.[1];
    const wheel = file === undefined ? undefined : files.get(file);
    if (wheel) {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': wheel.bytes.length,
      });
      return res.end(wheel.bytes);
    }
    return html(404, page('Not found', []));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        host,
        port,
        url: `http://${host}:${port}/simple/`,
        hits,
        close: () => {
          server.closeAllConnections();
          return new Promise((r) => server.close(() => r()));
        },
      });
    });
  });
}
