import { Gallery } from './Gallery';
import { mountPage } from './mount';

mountPage('demo', (session) => <Gallery session={session} />);
