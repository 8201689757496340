import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { planCollection } from '../../src/sandbox/collect-plan.js';
import { parseListing, readListing } from '../../src/sandbox/docker-collect.js';
import { checkSandboxPath, tmpfsMounts } from '../../src/sandbox/layout.js';

const MiB = 1024 ** 2;

describe('planCollection: which results are copied out', () => {
  const files = [
    { path: 'huge.bin', size: 3 * 1024 ** 3 },
    { path: 'b.txt', size: 20 },
    { path: 'a.txt', size: 20 },
    { path: 'report.md', size: 5 * MiB },
    { path: 'data.csv', size: 2 * MiB },
  ];

  it('keeps the small files when one is far over the limits, and names what it dropped', () => {
    const plan = planCollection(files, { maxFiles: 100, maxBytes: 6 * MiB, maxFileBytes: 100 * MiB });
    expect(plan.keep.map((f) => f.path)).toEqual(['a.txt', 'b.txt', 'data.csv']);
    expect(plan.dropped).toEqual([
      { path: 'huge.bin', size: 3 * 1024 ** 3, reason: 'file_too_large' },
      { path: 'report.md', size: 5 * MiB, reason: 'total_too_large' },
    ]);
  });

  it('takes the smallest first up to the file count; ties go by path', () => {
    const plan = planCollection(files, { maxFiles: 2, maxBytes: 1024 ** 4, maxFileBytes: 1024 ** 4 });
    expect(plan.keep.map((f) => f.path)).toEqual(['a.txt', 'b.txt']);
    expect(plan.dropped.map((f) => [f.path, f.reason])).toEqual([
      ['huge.bin', 'too_many_files'],
      ['report.md', 'too_many_files'],
      ['data.csv', 'too_many_files'],
    ]);
  });

  it('keeps everything within the limits', () => {
    const small = files.filter((f) => f.size < MiB);
    const plan = planCollection(small, { maxFiles: 2, maxBytes: 40, maxFileBytes: 20 });
    expect(plan).toEqual({ keep: [small[1], small[0]], dropped: [] });
  });
});

describe('parseListing: what find said is in results_dir', () => {
  it('reads NUL-separated records, any name, and reports names that are not UTF-8', () => {
    const buf = Buffer.concat([
      Buffer.from('12 a.txt\0'),
      Buffer.from('3 dir/with space\nand newline.md\0'),
      Buffer.from('5 '),
      Buffer.from([0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e, 0]),
      Buffer.from('7 ../escape\0'),
      Buffer.from('x bad-size\0'),
    ]);
    expect(parseListing(buf, false)).toEqual({
      files: [
        { path: 'a.txt', size: 12 },
        { path: 'dir/with space\nand newline.md', size: 3 },
      ],
      dropped: [{ path: '\ufffd\ufffd.bin', size: 5, reason: 'bad_name' }],
    });
  });

  it('says so when the listing was cut', () => {
    expect(parseListing(Buffer.from('1 a\0' + '2 b'), true)).toEqual({
      files: [{ path: 'a', size: 1 }],
      dropped: [{ path: '(the rest of the listing)', size: 0, reason: 'listing_too_long' }],
    });
  });
});

describe('readListing: the listing, then the tar, on one stream', () => {
  const stream = Buffer.from('\0' + '12 a.txt\0' + '3 END\0' + 'END\0' + 'TARBYTES');

  it('finds the end marker wherever the chunks split it, and hands on the rest intact', async () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const out = new PassThrough();
      const read = readListing(out);
      out.write(stream.subarray(0, cut));
      out.end(stream.subarray(cut));
      const res = await read;
      expect(parseListing(res!.listing, res!.cut).files, `cut at ${cut}`).toEqual([
        { path: 'a.txt', size: 12 },
        { path: 'END', size: 3 },
      ]);
      const rest: Buffer[] = [];
      for await (const c of res!.rest) rest.push(c as Buffer);
      expect(Buffer.concat(rest).toString(), `cut at ${cut}`).toBe('TARBYTES');
    }
  });

  it('is null when the output ends without the marker (no such directory)', async () => {
    const out = new PassThrough();
    const read = readListing(out);
    out.end();
    expect(await read).toBeNull();
  });
});

describe('the sandbox layout', () => {
  it('splits the disk limit across the writable mounts and adds the bytes of the files placed there', () => {
    const mounts = tmpfsMounts(1024 ** 3, [
      { path: '/app/assets/in.csv', content: Buffer.alloc(10_000) },
      { path: '/home/agent/.codex/config.toml', content: 'x' },
    ]);
    const size = (m: string) => Number(/size=(\d+)/.exec(mounts[m] ?? '')?.[1]);
    expect(size('/app')).toBe(512 * MiB + 12_288);
    expect(size('/tmp')).toBe(256 * MiB);
    expect(size('/home/agent')).toBe(192 * MiB + 4096);
    expect(size('/var/tmp')).toBe(64 * MiB);
    expect(size('/run/lock')).toBe(MiB);
    expect(mounts['/app']).toContain('uid=1000,gid=1000,mode=0755');
    expect(mounts['/tmp']).toContain('mode=1777');
    // Agents run what they write; nothing in a sandbox needs setuid or devices.
    expect(mounts['/tmp']).toMatch(/^rw,exec,nosuid,nodev,/);
  });

  it('places files only inside the writable mounts', () => {
    expect(checkSandboxPath('/home/agent//.jetty/./p.md')).toBe('/home/agent/.jetty/p.md');
    for (const bad of ['/etc/passwd', '/app', 'relative.txt', '/app/../etc/x', '/usr/local/bin/claude']) {
      expect(() => checkSandboxPath(bad), bad).toThrow(/sandbox file path/);
    }
  });
});
