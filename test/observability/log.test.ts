import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { createLogger } from '../../src/observability/log.js';

const capture = () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString()));
  return { stream, text: () => text };
};

describe('createLogger (pino)', () => {
  it('writes one JSON line per entry with time (ISO 8601), level by name, msg and the fields, at or above its level', () => {
    const out = capture();
    const log = createLogger('info', 'json', out.stream);
    log.debug('not shown');
    log.info('snapshot published', { group: 'default', services: 2 });
    log.error('plain');
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).to.have.length(2);
    expect(lines[0]).to.include({ level: 'info', msg: 'snapshot published', group: 'default', services: 2 });
    expect(new Date(lines[0].time).toISOString()).to.equal(lines[0].time);
    expect(Object.keys(lines[0]).sort()).to.deep.equal(['group', 'level', 'msg', 'services', 'time']); // no pid or hostname
    expect(lines[1]).to.include({ level: 'error', msg: 'plain' });
  });

  it('writes a readable line per entry in text mode, fields beneath', () => {
    const out = capture();
    createLogger('info', 'text', out.stream).warn('NACK', { node: 'envoy-1', type: 'lds' });
    expect(out.text()).to.match(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: NACK\n\s+node: "envoy-1"\n\s+type: "lds"\n$/);
  });
});
