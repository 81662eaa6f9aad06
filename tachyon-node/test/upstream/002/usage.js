// @tiga-ipc/mmap's usage example, as written but for a Linux ipcDirectory.
const {
  startTigaServer,
  tigaInvoke,
  tigaWrite,
  tigaRead,
} = require('@tiga-ipc/mmap');

async function main() {
  const ipcDirectory = process.env.TIGA_DIR ?? '/tmp/tiga-ipc';
  const server = startTigaServer({
    channelName: 'sample',
    ipcDirectory,
    onInvoke(method, data) {
      if (method === 'echo') {
        return `reply:${data}`;
      }
      throw new Error(`method not supported: ${method}`);
    },
  });

  try {
    const reply = tigaInvoke(
      'sample.req.client-a',
      'sample.resp.client-a',
      'echo',
      'hello from node',
      {
        ipcDirectory,
        timeoutMs: 3000,
      },
    );
    console.log(reply);

    tigaWrite('sample.events', 'event payload', {
      ipcDirectory,
      mediaType: 'text/plain',
    });

    const result = tigaRead('sample.events', {
      ipcDirectory,
      lastId: 0,
    });
    console.log(result.lastId, result.entries.length);
  } finally {
    await server.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
