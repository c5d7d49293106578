import { expect } from 'chai';
import { messageType } from '../../src/xds/protos.js';
import { decodeDiscoveryRequest, type SotwRequest } from '../../src/xds/request.js';

const T = messageType('envoy.service.discovery.v3.DiscoveryRequest');
const encode = (o: object) => Buffer.from(T.encode(T.fromObject(o)).finish());

describe('decodeDiscoveryRequest', () => {
  it('reads every field the protocol uses, as Envoy\'s protos encode them', () => {
    const r = decodeDiscoveryRequest(encode({
      version_info: 'v1', node: { id: 'envoy-1', cluster: 'edge', user_agent_name: 'envoy', user_agent_version: '1.31' },
      resource_names: ['a/http', 'ü/http', '*'], type_url: 'type.googleapis.com/x', response_nonce: 'n7',
      error_detail: { code: 3, message: 'bad' }, resource_locators: [{ name: 'ignored' }],
    })) as SotwRequest;
    expect(r).to.not.have.property('malformed');
    expect([r.version_info, r.type_url, r.response_nonce]).to.deep.equal(['v1', 'type.googleapis.com/x', 'n7']);
    expect([r.node?.id, r.node?.cluster, r.node?.user_agent_name, r.node?.user_agent_version]).to.deep.equal(['envoy-1', 'edge', 'envoy', '1.31']);
    expect([r.error_detail?.code, r.error_detail?.message]).to.deep.equal([3, 'bad']);
    expect(r.names_count).to.equal(3);
    expect(r.resource_names).to.deep.equal(['a/http', 'ü/http', '*']);
  });

  it('gives equal name keys exactly for equal name lists', () => {
    const key = (o: object) => (decodeDiscoveryRequest(encode(o)) as SotwRequest).names_key;
    const a = key({ type_url: 't', response_nonce: '1', resource_names: ['a', 'b'] });
    expect(a!.equals(key({ type_url: 't', response_nonce: '2', version_info: 'v', resource_names: ['a', 'b'] })!)).to.equal(true);
    expect(a!.equals(key({ type_url: 't', resource_names: ['a', 'c'] })!)).to.equal(false);
    expect(a!.equals(key({ type_url: 't', resource_names: ['a'] })!)).to.equal(false);
    expect(key({ type_url: 't' })).to.equal(undefined);
  });

  it('recognises a subscription it is told of by its bytes, and reads anything else name by name', () => {
    const names = Array.from({ length: 500 }, (_, i) => `svc-${i}/http`);
    const held = decodeDiscoveryRequest(encode({ type_url: 't', resource_names: names })) as SotwRequest;
    const known = [{ key: Buffer.from('\x1a\x01z'), count: 1 }, { key: Buffer.from(held.names_key!), count: held.names_count }];
    const read = (o: object) => {
      const [plain, hinted] = [decodeDiscoveryRequest(encode(o)), decodeDiscoveryRequest(encode(o), known)] as SotwRequest[];
      for (const r of [plain, hinted]) expect(r).to.not.have.property('malformed');
      const view = (r: SotwRequest) => ({ key: r.names_key?.toString('hex'), count: r.names_count, names: r.resource_names, rest: [r.version_info, r.type_url, r.response_nonce] });
      expect(view(hinted!)).to.deep.equal(view(plain!));
      return hinted!;
    };
    const ack = read({ version_info: 'v', type_url: 't', response_nonce: '9', resource_names: names });
    expect([ack.names_count, ack.resource_names.length, ack.response_nonce]).to.deep.equal([500, 500, '9']);
    // The held names and one more, one fewer, or a different last one: none is the held subscription.
    expect(read({ type_url: 't', resource_names: [...names, 'extra/http'] }).names_count).to.equal(501);
    expect(read({ type_url: 't', resource_names: names.slice(0, -1) }).names_count).to.equal(499);
    expect(read({ type_url: 't', resource_names: [...names.slice(0, -1), 'svc-499/grpc'] }).resource_names.at(-1)).to.equal('svc-499/grpc');
    expect(read({ type_url: 't', resource_names: ['z'] }).names_count).to.equal(1);
  });

  it('skips unknown fields of every wire type', () => {
    const extra = Buffer.from([0xf8, 0x01, 0x05, 0xf9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xfd, 0x01, 1, 2, 3, 4]);
    const r = decodeDiscoveryRequest(Buffer.concat([encode({ type_url: 't', resource_names: ['a'] }), extra])) as SotwRequest;
    expect([r.type_url, r.resource_names]).to.deep.equal(['t', ['a']]);
  });

  for (const [what, bytes] of [['a truncated length', [0x22, 0x05, 0x61]], ['a truncated varint', [0x22, 0xff]], ['a group wire type', [0x23]]] as const) {
    it(`reports ${what} as malformed`, () => {
      const r = decodeDiscoveryRequest(Buffer.from(bytes));
      expect(r).to.have.property('malformed').that.matches(/^cannot decode envoy.service.discovery.v3.DiscoveryRequest: /);
    });
  }
});
