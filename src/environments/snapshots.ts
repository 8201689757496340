/**
 * The snapshots this server knows: named environments, each an image built by
 * docker/build-images.sh from docker/environments/<name>/. What each image really holds (its
 * Python, its size, its commands) is learnt from the image itself by the workers that have it
 * (src/environments/store.ts); this is only the name → image map and what the name promises.
 */

export interface SnapshotSpec {
  name: string;
  image: string;
  description: string;
}

/** Every run's environment unless it names another. */
export const DEFAULT_SNAPSHOT = 'lean';

export const SNAPSHOTS: readonly SnapshotSpec[] = [
  {
    name: 'lean',
    image: 'jetty/env-lean:1',
    description: 'Debian bookworm with Node 22, bash and the base utilities; no Python',
  },
  {
    name: 'python312-uv',
    image: 'jetty/env-python312-uv:1',
    description: 'Python with pip, venv and uv; curl, git, jq, unzip and build-essential',
  },
  {
    name: 'python312-uv-office',
    image: 'jetty/env-python312-uv-office:1',
    description: 'python312-uv plus openpyxl, python-docx, pypdf, pdfplumber, reportlab and poppler-utils',
  },
  {
    name: 'prism-playwright',
    image: 'jetty/env-prism-playwright:1',
    description: "python312-uv plus Debian's chromium, Playwright for Python and Node, Node 22 with npm",
  },
];

export const SNAPSHOT_NAMES: readonly string[] = SNAPSHOTS.map((s) => s.name);

export function snapshotByName(name: string): SnapshotSpec | undefined {
  return SNAPSHOTS.find((s) => s.name === name);
}
