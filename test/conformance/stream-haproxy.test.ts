import { defineStreamSuite } from './stream-suite.js';

defineStreamSuite('haproxy');
